/**
 * What `restore --dry-run` says a launch would do, as lines or (`--json`) as one object: the
 * image, the instance, each setting kept, set, adapted or lost, and the volumes. Calls nothing.
 */
import type { RestoreSettings } from '../../config.js';
import type { InstanceMeta } from '../../format/members.js';
import { registerImageInput, restoredMappings, runInstancesInput } from './launch-input.js';
import type { LaunchSpec } from './preflight.js';
import { describeLine, type SettingLine } from './settings.js';
import type { RestoredVolume } from './volumes.js';

/**
 * An AMI registered from snapshots carries no billing product ("Understand AMI billing
 * information", EC2 user guide): a Windows, RHEL or SLES instance restored that way runs as plain
 * Linux/UNIX, without the license AWS sold with it. Said before the launch, with what to do.
 */
export function billingLoss(meta: InstanceMeta): string | undefined {
  if (
    meta.usageOperation === undefined ||
    meta.usageOperation === null ||
    meta.usageOperation === 'RunInstances'
  )
    return undefined;
  const platform = meta.platformDetails ?? 'a licensed platform';
  return (
    `the source ran ${platform} (billing code ${meta.usageOperation}), and an instance launched from snapshots loses ` +
    'that billing product and its license. To keep it, launch from the vendor AMI and replace its root volume with the ' +
    'restored snapshot (EC2 "Replace root volume"), after restore --no-launch.'
  );
}

export interface LaunchPlan {
  source: string;
  region: string;
  image: {
    architecture: string;
    bootMode: string | null;
    rootDevice: string;
    ena: boolean | null;
    uefiData: boolean;
    kept: boolean;
  };
  instance: {
    type: string;
    zone: string | null;
    subnet: string | null;
    securityGroups: string[];
    keyName: string | null;
    placementGroup: string | null;
    tags: number;
  };
  settings: SettingLine[];
  volumes: { device: string; snapshot: string; source: string }[];
  warnings: string[];
}

export function launchPlan(
  settings: RestoreSettings,
  job: string,
  region: string,
  meta: InstanceMeta,
  spec: LaunchSpec,
  restored: Map<string, RestoredVolume>,
): LaunchPlan {
  const date = new Date().toISOString();
  const image = registerImageInput(settings, job, meta, spec, restored, date, '');
  const input = runInstancesInput(settings, meta, spec, '(the image above)', date, '');
  const primary = spec.interfaces?.[0];
  const billing = billingLoss(meta);
  return {
    source: meta.instanceId,
    region,
    image: {
      architecture: image.Architecture ?? 'x86_64',
      bootMode: image.BootMode ?? null,
      rootDevice: image.RootDeviceName ?? '?',
      ena: image.EnaSupport ?? null,
      uefiData: image.UefiData !== undefined,
      kept: settings.keepImage,
    },
    instance: {
      type: spec.type.name,
      zone: spec.zone ?? null,
      subnet: primary?.subnetId ?? spec.subnetId ?? null,
      securityGroups: primary?.groupIds ?? spec.securityGroupIds,
      keyName: spec.keyName ?? null,
      placementGroup: spec.placement.groupName ?? null,
      tags: input.TagSpecifications?.[0]?.Tags?.length ?? 0,
    },
    settings: spec.settings,
    volumes: restoredMappings(meta, restored).map((m) => ({
      device: m.deviceName,
      snapshot: m.volume.snapshotId,
      source: m.volumeId,
    })),
    warnings: billing !== undefined ? [billing] : [],
  };
}

/** The plan as the lines `--dry-run` prints. */
export function planLines(plan: LaunchPlan): string[] {
  const { image, instance } = plan;
  return [
    `image: from the restored snapshots of ${plan.source}, architecture ${image.architecture}, ` +
      `boot mode ${image.bootMode ?? 'default'}, root ${image.rootDevice}, ENA ${String(image.ena ?? false)}` +
      `${image.uefiData ? ', with its UEFI variable store' : ''}` +
      `${image.kept ? ', kept after the launch' : ', deregistered after the launch'}`,
    `instance: type ${instance.type}, subnet ${instance.subnet ?? 'default'}, ` +
      `security groups ${instance.securityGroups.length ? instance.securityGroups.join(',') : 'default'}, key ${instance.keyName ?? 'none'}, ` +
      `zone ${instance.zone ?? 'any'}` +
      `${instance.placementGroup !== null ? `, placement group ${instance.placementGroup}` : ''}, ${instance.tags} tags`,
    ...plan.settings.map(describeLine),
    ...plan.volumes.map((v) => `volume: ${v.device} from ${v.snapshot} (source ${v.source})`),
    ...plan.warnings.map((w) => `warning: ${w}`),
  ];
}
