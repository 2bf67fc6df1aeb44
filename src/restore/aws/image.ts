/**
 * The AMI a launch runs from: found again when an earlier run made it (by the launch's token),
 * registered otherwise; and, unless kept, deregistered after the launch, but only when it is
 * this launch's own (docs/DESIGN.md §5: never delete what the tool did not create and tag).
 */
import type { EC2Client, Image, Instance, RegisterImageCommandInput } from '@aws-sdk/client-ec2';
import type { Logger } from 'pino';
import { answered } from '../../aws/answer.js';
import { deregisterImage, describeImage, registerImage } from '../../aws/instances.js';
import { messageOf } from '../../errors.js';
import { RESTORE_TAG, tagValue } from '../../format/tags.js';

/** The image a launch uses, and whether this run registered it (then it carries the token). */
export interface LaunchImage {
  imageId: string;
  registeredHere: boolean;
}

/**
 * The AMI of this launch: the one `earlier` (the instance an earlier run launched with the same
 * token) runs from, else one an earlier run registered with the token and did not get to use,
 * else a new one registered from `registration`.
 */
export async function launchImage(
  ec2: EC2Client,
  token: string,
  earlier: Instance | undefined,
  log: Logger,
  /** The source instance, as the log names it. */
  source: string,
  registration: () => { input: RegisterImageCommandInput; what: string },
  /** The AMIs tagged with `token` (imagesTagged), looked up by the caller. */
  taggedWithToken: Promise<Image[]>,
): Promise<LaunchImage> {
  if (earlier !== undefined) {
    const imageId = answered(earlier.ImageId, `the image of ${earlier.InstanceId ?? 'the earlier instance'}`);
    return { imageId, registeredHere: false };
  }
  const madeBefore = (await taggedWithToken).find(
    (i) => i.State === 'available' || i.State === 'pending',
  )?.ImageId;
  if (madeBefore !== undefined) {
    log.info(`${source}: using ${madeBefore}, registered by an earlier run`);
    return { imageId: madeBefore, registeredHere: false };
  }
  const { input, what } = registration();
  const imageId = await registerImage(ec2, input);
  log.info(`registered ${imageId} from ${what}`);
  return { imageId, registeredHere: true };
}

/**
 * Deregisters the launch's AMI when it is this launch's own: registered by this run, or carrying
 * its token. A failure is logged with what to do, not thrown: the instance is what matters.
 */
export async function dropImage(
  ec2: EC2Client,
  imageId: string,
  token: string,
  registeredHere: boolean,
  log: Logger,
): Promise<void> {
  const ours =
    registeredHere || tagValue((await describeImage(ec2, imageId))?.Tags, RESTORE_TAG.token) === token;
  if (!ours) return;
  await deregisterImage(ec2, imageId).catch((e: unknown) => {
    log.error(`could not deregister ${imageId}: ${messageOf(e)}; deregister it by hand`);
  });
}
