import { DescribeKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { UsageError } from '../errors.js';

/**
 * A key ec2-bpipe encrypts with must exist in its Region and be enabled: checked with DescribeKey
 * (KMS API reference; NotFoundException for an unknown key) before anything is made with it, since
 * EBS itself finds a bad key only later (a snapshot or copy that ends in the error state).
 * `setting` names the config key that chose it, for the message.
 */
export async function checkKmsKey(
  kms: KMSClient,
  keyId: string,
  region: string,
  setting: string,
): Promise<void> {
  let state: string | undefined;
  try {
    state = (await kms.send(new DescribeKeyCommand({ KeyId: keyId }))).KeyMetadata?.KeyState;
  } catch (err) {
    if (!(err instanceof Error && err.name === 'NotFoundException')) throw err;
    throw new UsageError(`KMS key ${keyId} does not exist in ${region}; check ${setting}.`);
  }
  if (state !== 'Enabled') {
    throw new UsageError(
      `KMS key ${keyId} is ${state ?? 'in an unknown state'}, not Enabled; choose another ${setting}.`,
    );
  }
}
