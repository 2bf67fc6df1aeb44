/**
 * A restore to AWS as its parts see it: the options it runs with, and what one stream (or a
 * finalizer's or a point's head) left in AWS for the launch at the end.
 */
import type { AwsClients } from '../../aws/clients.js';
import type { InstanceMeta, Manifest } from '../../format/members.js';
import type { LaunchResult } from './launch.js';
import type { Target } from './preflight.js';
import type { RestoredVolume } from './volumes.js';

/** What one stream left in AWS: enough to launch its instance once the chain is applied. */
export interface AppliedStream {
  manifest: Manifest;
  instance?: InstanceMeta;
  target: Target;
  clients: AwsClients;
  restored: Map<string, RestoredVolume>;
  /**
   * The launch already under way: started from the stream's live snapshots ([restore]
   * from-snapshots) while the stream was still being read.
   */
  launched?: Promise<LaunchResult | undefined>;
}

export interface AwsRestoreOptions {
  /** Whether an instance will be launched at the end: only then are subnet and groups needed. */
  launch: boolean;
  /**
   * Read and verify the streams, check the chain and every override against AWS, and print what
   * would be created; create, tag and write nothing.
   */
  dryRun?: boolean;
  /** Restore only these volumes of each stream (--volume); no instance is launched then. */
  volumes?: ReadonlySet<string>;
  /** Read format 1 streams, which prove less (--accept-format-1). */
  acceptFormat1?: boolean;
  /** With dryRun: the plan as one JSON object on stdout. */
  json?: boolean;
  /**
   * A restore test's id (restore --test): new snapshots whatever an earlier restore left (the
   * test removes them), and the instance launched as a test (testInstance).
   */
  testId?: string;
}
