/**
 * The end of a restore to AWS, once the chain's head is applied: the instance launched from its
 * restored snapshots, or volumes created from them for a volume stream, or, in a dry run, the
 * plan printed.
 */
import type { Logger } from 'pino';
import type { RestoreSettings } from '../../config.js';
import { launchInstance, type LaunchResult } from './launch.js';
import { launchPlan, planLines } from './plan.js';
import type { AppliedStream, AwsRestoreOptions } from './applied.js';
import { createVolumes } from './volumes.js';

export interface FinishContext {
  settings: RestoreSettings;
  options: AwsRestoreOptions;
  /** What this run does with the head's kind of stream. */
  intent: { launching: boolean; creatingVolumes: boolean };
  print: (line: string) => void;
  log: Logger;
}

export async function finishHead(
  head: AppliedStream,
  { settings, options, intent, print, log }: FinishContext,
): Promise<LaunchResult | undefined> {
  const { manifest, instance, target } = head;
  const { ec2 } = head.clients;
  // A test's volumes carry none of the source's tags (testInstance says why).
  const restored =
    options.testId === undefined
      ? head.restored
      : new Map([...head.restored].map(([id, v]) => [id, { ...v, meta: { ...v.meta, tags: [] } }]));
  const partial = options.volumes !== undefined;
  if (partial && manifest.kind === 'instance' && options.launch) {
    log.info(
      `${manifest.resourceId}: only ${[...restored.keys()].join(', ')} restored (--volume): no instance is launched${settings.createVolume ? '' : '; --create-volume makes volumes of them'}`,
    );
  }
  const { launching, creatingVolumes: volumesWanted } = intent;
  const spec = target.launch;
  if (options.dryRun) {
    if (instance && launching && spec) {
      const plan = launchPlan(settings, manifest.job, target.region, instance, spec, restored);
      if (options.json) {
        print(JSON.stringify({ dryRun: true, launch: plan }));
        return undefined;
      }
      for (const line of planLines(plan)) print(line);
    } else if (options.json) {
      print(
        JSON.stringify({
          dryRun: true,
          snapshots: [...restored].map(([source, v]) => ({ source, snapshot: v.snapshotId })),
          ...(volumesWanted && {
            volumes: [...restored].map(([source, v]) => ({
              source,
              zone: settings.availabilityZone ?? v.meta.availabilityZone,
            })),
          }),
        }),
      );
      return undefined;
    } else if (volumesWanted) {
      for (const [volumeId, v] of restored) {
        print(
          `volume: from ${v.snapshotId} (source ${volumeId}) in ${settings.availabilityZone ?? v.meta.availabilityZone ?? '?'}`,
        );
      }
    }
    print('dry run: nothing was created');
    return undefined;
  }
  if (instance && launching && spec) {
    const result = await launchInstance(
      ec2,
      { settings, manifest, meta: instance, target, spec, restored },
      log,
    );
    for (const v of result.volumes) print(`volume ${v.volumeId} source=${v.source} device=${v.device}`);
    if (result.imageKept) print(`image ${result.imageId} source=${instance.instanceId}`);
    print(
      `instance ${result.instanceId} source=${instance.instanceId} region=${target.region} az=${result.availabilityZone}`,
    );
    return result;
  }
  if (volumesWanted) {
    for (const v of await createVolumes(ec2, settings, manifest, target, restored, log)) {
      print(`volume ${v.volumeId} source=${v.source} az=${v.availabilityZone}`);
    }
  }
  return undefined;
}
