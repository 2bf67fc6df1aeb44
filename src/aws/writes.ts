import {
  CompleteSnapshotCommand,
  type EBSClient,
  PutSnapshotBlockCommand,
  StartSnapshotCommand,
  type StartSnapshotResponse,
  type Tag,
} from '@aws-sdk/client-ebs';
import { describeError, RuntimeFailure } from '../errors.js';
import { errorName, POLICY, transientNetworkError, withRetry } from '../retry.js';
import { ebsRetryable } from './ebs-retries.js';

/** EBS discards a started snapshot that sees no write and no completion for this long (the maximum). */
export const START_TIMEOUT_MINUTES = 4320;

export interface StartRequest {
  sizeGiB: number;
  parentSnapshotId?: string;
  encrypted: boolean;
  kmsKeyArn?: string;
  clientToken: string;
  description: string;
  tags: Tag[];
}

export async function startSnapshot(ebs: EBSClient, request: StartRequest): Promise<StartSnapshotResponse> {
  return ebs.send(
    new StartSnapshotCommand({
      VolumeSize: request.sizeGiB,
      ...(request.parentSnapshotId !== undefined && { ParentSnapshotId: request.parentSnapshotId }),
      ...(request.encrypted && { Encrypted: true }),
      ...(request.kmsKeyArn !== undefined && { KmsKeyArn: request.kmsKeyArn }),
      ClientToken: request.clientToken,
      Description: request.description,
      Tags: request.tags,
      Timeout: START_TIMEOUT_MINUTES,
    }),
  );
}

/**
 * Whether a block write is worth another attempt: what the EBS retry table calls retryable
 * ("Failed to read block data" included), a reset, and one answer the table calls final:
 * ResourceNotFoundException, since right after StartSnapshot the snapshot this job started may
 * not be visible to the data plane yet (coldsnap retries it the same way). Only a block write
 * retries it, and only for POLICY.blockWrite's two minutes.
 */
export function retryablePut(err: unknown): boolean {
  return ebsRetryable(err) || errorName(err) === 'ResourceNotFoundException' || transientNetworkError(err);
}

/**
 * Writes one block with its SHA-256. ResourceNotFound on a snapshot we just started is retried
 * for about two minutes with linear back-off, as AWS's own coldsnap does.
 */
export async function putBlock(
  ebs: EBSClient,
  snapshotId: string,
  index: number,
  data: Buffer,
  checksum: string,
): Promise<void> {
  try {
    await withRetry(POLICY.blockWrite, retryablePut, () =>
      ebs.send(
        new PutSnapshotBlockCommand({
          SnapshotId: snapshotId,
          BlockIndex: index,
          BlockData: data,
          DataLength: data.length,
          Checksum: checksum,
          ChecksumAlgorithm: 'SHA256',
        }),
      ),
    );
  } catch (err) {
    const reason = describeError(err);
    throw new RuntimeFailure(`block ${index} could not be written to snapshot ${snapshotId} (${reason})`, {
      cause: err,
    });
  }
}

export async function completeSnapshot(
  ebs: EBSClient,
  snapshotId: string,
  changedBlocks: number,
  aggregate: string,
): Promise<void> {
  await ebs.send(
    new CompleteSnapshotCommand({
      SnapshotId: snapshotId,
      ChangedBlocksCount: changedBlocks,
      Checksum: aggregate,
      ChecksumAlgorithm: 'SHA256',
      ChecksumAggregationMethod: 'LINEAR',
    }),
  );
}
