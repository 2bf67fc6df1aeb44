/**
 * Every row of "Error retries for EBS direct APIs" (src/aws/ebs-retries.ts), answered by the
 * emulator over HTTP to the tool's own EBS client and its block read and write: a retryable
 * answer is retried and the call then succeeds; a final one fails at the first request, named.
 */
import { createHash, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type BlockRef, readBlock, snapshotBlocks } from '../../src/aws/blocks.js';
import { type AwsClients, createClients } from '../../src/aws/clients.js';
import { completeSnapshot, putBlock, startSnapshot } from '../../src/aws/writes.js';
import { defaultConfig } from '../../src/config.js';
import { pollUntil, useClock } from '../../src/retry.js';
import { BlockRing } from '../../src/stream/block-ring.js';
import { join } from 'node:path';
import { BLOCK, cli, credentials, emulator, withEmulator, writeConfig } from '../helpers.js';

type Em = Awaited<ReturnType<typeof emulator>>;

const block = Buffer.alloc(BLOCK, 7);
const checksum = createHash('sha256').update(block).digest('base64');

describe('the EBS error retries table', () => {
  let em: Em;
  let clients: AwsClients;
  let restoreClock: () => void;
  /** A completed snapshot of one block, to read. */
  let snapshotId: string;
  let ref: BlockRef;

  beforeAll(async () => {
    // No real back-off: the SDK's and the tool's delays scaled to nothing.
    restoreClock = useClock({ sleep: () => Promise.resolve(), now: () => Date.now() }, 0);
    em = await emulator();
    const config = defaultConfig();
    Object.assign(config.aws, { ...credentials, endpointUrl: em.url });
    clients = createClients(config.aws, { region: 'us-east-1' });
    snapshotId = await started();
    await putBlock(clients.ebs, snapshotId, 0, block, checksum);
    await completeSnapshot(clients.ebs, snapshotId, 1, aggregate());
    // A completed snapshot becomes readable once EBS has sealed it.
    await pollUntil('the snapshot to complete', 10, async () =>
      (await em.admin.state()).snapshots.some((s) => s.SnapshotId === snapshotId && s.State === 'completed')
        ? true
        : undefined,
    );
    for await (const r of snapshotBlocks(clients.ebs, snapshotId)) ref = r;
  });
  afterAll(async () => {
    clients.destroy();
    await em.close();
    restoreClock();
  });
  // Before each test, not after: the first test must not count the set-up's requests.
  beforeEach(async () => {
    await em.admin.call('POST', 'requests/reset');
  });

  function aggregate(): string {
    return createHash('sha256').update(Buffer.from(checksum, 'base64')).digest('base64');
  }

  async function started(): Promise<string> {
    const response = await startSnapshot(clients.ebs, {
      sizeGiB: 1,
      encrypted: false,
      clientToken: randomUUID(),
      description: 'retry table test',
      tags: [],
    });
    return response.SnapshotId ?? '';
  }

  async function inject(action: string, code: string, count: number, message?: string): Promise<void> {
    await em.admin.call('POST', 'fail', { action, code, count, ...(message !== undefined && { message }) });
  }

  async function sent(action: string): Promise<number> {
    return (await em.admin.requests())[`ebs:${action}`] ?? 0;
  }

  /** Reads the block; resolves to its SHA-256 as checked against AWS's. */
  const read = async (): Promise<Buffer> =>
    (await readBlock(clients.ebs, snapshotId, ref, new BlockRing(1, BLOCK))).digest;
  const write = async (): Promise<void> => putBlock(clients.ebs, await started(), 0, block, checksum);

  describe.each([
    ['InternalServerException', undefined],
    ['ThrottlingException', undefined],
    ['RequestThrottledException', undefined],
    ['ConcurrentLimitExceededException', undefined],
    ['ServiceUnavailable', undefined],
  ])('%s (retryable)', (code, message) => {
    it('GetSnapshotBlock is retried, then reads the block', async () => {
      await inject('GetSnapshotBlock', code, 2, message);
      const { digest, slot } = await readBlock(clients.ebs, snapshotId, ref, new BlockRing(1, BLOCK));
      expect(digest.toString('base64')).toBe(checksum);
      expect(slot.data.equals(block)).toBe(true);
      expect(await sent('GetSnapshotBlock')).toBe(3);
    });
    it('PutSnapshotBlock is retried, then writes the block', async () => {
      await inject('PutSnapshotBlock', code, 2, message);
      await write();
      expect(await sent('PutSnapshotBlock')).toBe(3);
    });
  });

  it('ValidationException "Failed to read block data" on PutSnapshotBlock is retried', async () => {
    await inject('PutSnapshotBlock', 'ValidationException', 2, 'Failed to read block data');
    await write();
    expect(await sent('PutSnapshotBlock')).toBe(3);
  });

  it('ThrottlingException on StartSnapshot and ListSnapshotBlocks is retried by the SDK', async () => {
    await inject('StartSnapshot', 'ThrottlingException', 2);
    await inject('ListSnapshotBlocks', 'ThrottlingException', 2);
    expect(await started()).toMatch(/^snap-/);
    const listed: BlockRef[] = [];
    for await (const r of snapshotBlocks(clients.ebs, snapshotId)) listed.push(r);
    expect(listed.map((r) => r.index)).toEqual([0]);
    expect(await sent('StartSnapshot')).toBe(3);
    expect(await sent('ListSnapshotBlocks')).toBe(3);
  });

  it('a retryable answer outlasting the SDK attempts is retried by the block loops', async () => {
    // The SDK makes 8 attempts; 12 failures in a row end a call the tool's loop then repeats.
    await inject('GetSnapshotBlock', 'InternalServerException', 12);
    await read();
    expect(await sent('GetSnapshotBlock')).toBe(13);
    await inject('PutSnapshotBlock', 'ValidationException', 12, 'Failed to read block data');
    await write();
    expect(await sent('PutSnapshotBlock')).toBe(13);
  });

  describe.each([
    ['ValidationException', 'The block index is out of range'],
    ['ResourceNotFoundException', undefined],
    ['AccessDeniedException', undefined],
    ['ServiceQuotaExceededException', undefined],
    ['InvalidSignatureException', undefined],
  ])('%s (final)', (code, message) => {
    it('GetSnapshotBlock fails at the first request, naming it', async () => {
      await inject('GetSnapshotBlock', code, 1, message);
      await expect(read()).rejects.toThrow(new RegExp(`block 0 of snapshot snap-\\w+ .*${code}`));
      expect(await sent('GetSnapshotBlock')).toBe(1);
    });
  });

  it.each([
    ['ValidationException', 'The block index is out of range'],
    ['AccessDeniedException', undefined],
    ['ServiceQuotaExceededException', undefined],
    ['InvalidSignatureException', undefined],
  ])('%s (final) on PutSnapshotBlock fails at the first request, naming it', async (code, message) => {
    const id = await started();
    await inject('PutSnapshotBlock', code, 1, message);
    await expect(putBlock(clients.ebs, id, 0, block, checksum)).rejects.toThrow(
      new RegExp(`block 0 could not be written to snapshot ${id} \\(${code}`),
    );
    expect(await sent('PutSnapshotBlock')).toBe(1);
  });

  it('ConflictException on StartSnapshot fails at the first request, naming it', async () => {
    await inject('StartSnapshot', 'ConflictException', 1);
    await expect(started()).rejects.toMatchObject({ name: 'ConflictException' });
    expect(await sent('StartSnapshot')).toBe(1);
  });

  it('ResourceNotFoundException on PutSnapshotBlock is the one final answer a block write retries', async () => {
    // A snapshot just started may not be visible to the data plane yet (src/aws/writes.ts).
    await inject('PutSnapshotBlock', 'ResourceNotFoundException', 2);
    await write();
    expect(await sent('PutSnapshotBlock')).toBe(3);
  });

  it('the emulator refuses to inject an answer the table says a call never gives', async () => {
    await expect(inject('GetSnapshotBlock', 'ConflictException', 1)).rejects.toThrow(
      /GetSnapshotBlock never answers ConflictException/,
    );
  });
});

describe('a block listing in another block size', () => {
  it('is refused by a backup, naming the listing and the size, before any block is read', async () => {
    await withEmulator({ listBlockSize: 4096 }, async (em, dir) => {
      const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 2, seed: 3 } });
      const config = writeConfig(dir.path, em);
      const result = await cli(['backup', `--config=${config}`, `--volume=${volumeId}`, '--job=b1'], {
        stdoutFile: join(dir.path, 'b1.tar'),
      });
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(
        /ListSnapshotBlocks for snap-\w+ answered blocks of 4096 bytes; ec2-bpipe reads and writes blocks of 524288 bytes/,
      );
      expect((await em.admin.requests())['ebs:GetSnapshotBlock']).toBeUndefined();
    });
  });
});
