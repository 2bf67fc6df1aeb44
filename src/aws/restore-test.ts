/**
 * The AWS side of a restore test (restore --test): the new instance's status checks and console
 * output, and the removal of everything the test created, found by the test's own tag.
 */
import {
  DeleteVolumeCommand,
  DescribeImagesCommand,
  DescribeInstanceStatusCommand,
  type EC2Client,
  GetConsoleOutputCommand,
  paginateDescribeInstances,
  paginateDescribeSnapshots,
  paginateDescribeVolumes,
  type Tag,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { messageOf, RuntimeFailure } from '../errors.js';
import { deregisterImage } from './instances.js';
import { deleteSnapshot } from './snapshots.js';
import { pollUntil } from '../retry.js';
import { RESTORE_TAG, tagValue } from '../format/tags.js';

/** What EC2's two status checks said, once both reported. */
export interface StatusChecks {
  passed: boolean;
  /** InstanceStatusSummary of the host (`system`) and of the instance's OS (`instance`). */
  system: string;
  instance: string;
}

/**
 * Waits until both status checks of a running instance report (DescribeInstanceStatus): `ok`
 * both passes, `impaired` either fails. `initializing` and `insufficient-data` are waited out;
 * an instance that stops running fails at once.
 */
export async function statusChecks(
  ec2: EC2Client,
  instanceId: string,
  timeoutS: number,
): Promise<StatusChecks> {
  return pollUntil(
    `the status checks of ${instanceId}`,
    timeoutS,
    async () => {
      const { InstanceStatuses = [] } = await ec2.send(
        new DescribeInstanceStatusCommand({ InstanceIds: [instanceId], IncludeAllInstances: true }),
      );
      const status = InstanceStatuses[0];
      const state = status?.InstanceState?.Name;
      if (state !== undefined && state !== 'running')
        return { passed: false, system: `instance ${state}`, instance: `instance ${state}` };
      const system = status?.SystemStatus?.Status ?? 'initializing';
      const instance = status?.InstanceStatus?.Status ?? 'initializing';
      if (system === 'impaired' || instance === 'impaired') return { passed: false, system, instance };
      if (system === 'ok' && instance === 'ok') return { passed: true, system, instance };
      return undefined;
    },
    () =>
      `the status checks of ${instanceId} did not report within ${timeoutS}s (EC2 reports them a few minutes after the instance runs)`,
  );
}

/**
 * The last `lines` lines of the instance's console (GetConsoleOutput), printable characters
 * only: the console is the guest's text, and reaches a log line. Empty when EC2 has none yet.
 */
export async function consoleTail(ec2: EC2Client, instanceId: string, lines: number): Promise<string[]> {
  const { Output } = await ec2.send(new GetConsoleOutputCommand({ InstanceId: instanceId }));
  if (Output === undefined || Output === '') return [];
  return Buffer.from(Output, 'base64')
    .toString('utf8')
    .split(/\r?\n/)
    .map((line) => line.replace(/[^\x20-\x7e\t]/g, '?').trimEnd())
    .filter((line) => line !== '')
    .slice(-lines);
}

/** What the removal of a test's resources did, and what it could not remove. */
export interface Removal {
  terminated: string[];
  deregistered: string[];
  volumes: string[];
  snapshots: string[];
  /** Resources left, each with why: the operator removes them by hand. */
  left: string[];
}

/** A resource of this test: its tag says this run, and the restore flag says a restore made it. */
function ofTest(tags: Tag[] | undefined, testId: string): boolean {
  return tagValue(tags, RESTORE_TAG.test) === testId && tagValue(tags, RESTORE_TAG.restored) === 'true';
}

/**
 * Removes everything a restore test created, found by its tag (`ec2-bpipe:restore-test` = the
 * run's id) beside the restore flag, never by anything else: the instance (terminated, and
 * waited for, so its volumes are released), the AMI, the volumes left, the restored snapshots.
 * Each failure is kept and said; the removal goes on with the rest.
 */
export async function removeTestResources(
  ec2: EC2Client,
  testId: string,
  timeoutS: number,
): Promise<Removal> {
  const removal: Removal = { terminated: [], deregistered: [], volumes: [], snapshots: [], left: [] };
  const filters = [{ Name: `tag:${RESTORE_TAG.test}`, Values: [testId] }];
  const attempt = async (what: string, action: () => Promise<unknown>): Promise<boolean> => {
    try {
      await action();
      return true;
    } catch (err) {
      removal.left.push(`${what} (${messageOf(err)})`);
      return false;
    }
  };
  const liveInstances = async (): Promise<string[]> => {
    const ids: string[] = [];
    for await (const page of paginateDescribeInstances({ client: ec2 }, { Filters: filters })) {
      for (const instance of (page.Reservations ?? []).flatMap((r) => r.Instances ?? [])) {
        if (instance.InstanceId === undefined || !ofTest(instance.Tags, testId)) continue;
        if (instance.State?.Name !== 'terminated') ids.push(instance.InstanceId);
      }
    }
    return ids;
  };
  const instances = await liveInstances();
  if (instances.length) {
    if (
      await attempt(`instance ${instances.join(', ')}`, () =>
        ec2.send(new TerminateInstancesCommand({ InstanceIds: instances })),
      )
    ) {
      removal.terminated.push(...instances);
      // Its volumes are released only once it is terminated.
      await attempt(`instance ${instances.join(', ')} terminating`, () =>
        pollUntil(`${instances.join(', ')} terminated`, timeoutS, async () =>
          (await liveInstances()).length === 0 ? true : undefined,
        ),
      );
    }
  }
  const { Images = [] } = await ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: filters }));
  for (const image of Images) {
    if (image.ImageId === undefined || !ofTest(image.Tags, testId) || image.State === 'deregistered')
      continue;
    const imageId = image.ImageId;
    if (await attempt(`image ${imageId}`, () => deregisterImage(ec2, imageId)))
      removal.deregistered.push(imageId);
  }
  for await (const page of paginateDescribeVolumes({ client: ec2 }, { Filters: filters })) {
    for (const volume of page.Volumes ?? []) {
      const volumeId = volume.VolumeId;
      if (volumeId === undefined || !ofTest(volume.Tags, testId)) continue;
      if (
        await attempt(`volume ${volumeId}`, () => ec2.send(new DeleteVolumeCommand({ VolumeId: volumeId })))
      )
        removal.volumes.push(volumeId);
    }
  }
  for await (const page of paginateDescribeSnapshots(
    { client: ec2 },
    { OwnerIds: ['self'], Filters: filters },
  )) {
    for (const snapshot of page.Snapshots ?? []) {
      const snapshotId = snapshot.SnapshotId;
      if (snapshotId === undefined || !ofTest(snapshot.Tags, testId)) continue;
      if (await attempt(`snapshot ${snapshotId}`, () => deleteSnapshot(ec2, snapshotId)))
        removal.snapshots.push(snapshotId);
    }
  }
  return removal;
}

/** Refuses a removal that left something: the test must not report success over a leftover. */
export function removalComplete(removal: Removal): void {
  if (removal.left.length)
    throw new RuntimeFailure(`the restore test left ${removal.left.join('; ')}: remove them by hand`);
}
