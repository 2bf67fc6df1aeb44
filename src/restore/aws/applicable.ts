/**
 * Which restore settings can apply to the streams at hand. A flag that cannot is refused (exit 2):
 * the operator asked for something this restore would silently not do. A `[restore]` key of the
 * config file that cannot is only said, once: one file serves every restore of its units (to AWS
 * and to files, instances and volumes), and Bacula's data writers always run with --no-launch
 * while the same file's launch keys are meant for the finalizer's writer (README, "Restore
 * options that cannot apply").
 */
import type { Logger } from 'pino';
import type { Config } from '../../config.js';
import { UsageError } from '../../errors.js';

export type RestoreSituation =
  | { to: 'files' }
  | {
      to: 'aws';
      kind: 'instance' | 'volumes';
      /** --no-launch not given. */
      launch: boolean;
      /** --volume given. */
      partial: boolean;
      createVolume: boolean;
    };

const LAUNCH_KEYS = new Set([
  'instance-type',
  'subnet-id',
  'security-group-ids',
  'key-name',
  'placement-group',
  'partition-number',
  'keep-image',
  'iam-instance-profile',
  'keep-private-ip',
  'ena-support',
]);

/** Why `key` cannot apply in `situation`, or undefined when it can. */
export function inapplicable(key: string, situation: RestoreSituation): string | undefined {
  if (situation.to === 'files') return 'a restore to files writes images and creates nothing in AWS';
  const { kind, launch, partial, createVolume } = situation;
  const launching = kind === 'instance' && launch && !partial;
  if (LAUNCH_KEYS.has(key) && !launching) {
    return kind === 'volumes'
      ? 'a volume stream launches no instance'
      : partial
        ? '--volume restores volumes and launches no instance'
        : '--no-launch launches nothing';
  }
  const volumesMade = createVolume && (kind === 'volumes' || partial);
  if (key === 'create-volume' && kind === 'instance' && !partial)
    return 'the volumes of an instance stream come back attached to the launched instance; create-volume is for volume streams, or with --volume';
  if (key === 'availability-zone' && !volumesMade) {
    return kind === 'instance' && !partial
      ? 'an instance lands in the zone of its subnet; choose the zone with --subnet-id'
      : 'it is the zone of --create-volume, which is not asked for';
  }
  return undefined;
}

/** Refuses the flags that cannot apply; says, once per key, the config keys that do not. */
export class ApplicabilityCheck {
  private readonly said = new Set<string>();

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
  ) {}

  check(situation: RestoreSituation, streams: string): void {
    for (const [name, where] of this.config.given) {
      if (!name.startsWith('restore.')) continue;
      const key = name.slice('restore.'.length);
      const why = inapplicable(key, situation);
      if (why === undefined) continue;
      if (where.startsWith('--')) throw new UsageError(`${where} cannot apply to ${streams}: ${why}.`);
      if (this.said.has(key)) continue;
      this.said.add(key);
      this.log.info(`[restore] ${key} of ${where} is not used for ${streams}: ${why}`);
    }
  }
}
