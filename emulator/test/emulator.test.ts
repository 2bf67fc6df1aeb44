import { createHash } from 'node:crypto';
import {
  CompleteSnapshotCommand,
  EBSClient,
  GetSnapshotBlockCommand,
  ListChangedBlocksCommand,
  ListSnapshotBlocksCommand,
  PutSnapshotBlockCommand,
  StartSnapshotCommand,
} from '@aws-sdk/client-ebs';
import {
  CreateSnapshotCommand,
  CreateSnapshotsCommand,
  CreateVolumeCommand,
  DescribeInstancesCommand,
  DescribeSnapshotsCommand,
  EC2Client,
  GetEbsEncryptionByDefaultCommand,
} from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClients } from '../../src/aws/clients.js';
import { defaultConfig } from '../../src/config.js';
import { BLOCK, credentials, emulator, sdkConfig } from '../../test/helpers.js';

type Em = Awaited<ReturnType<typeof emulator>>;

const sha = (b: Buffer) => createHash('sha256').update(b).digest();
const block = (fill: number) => Buffer.alloc(BLOCK, fill);

async function errorOf(p: Promise<unknown>): Promise<any> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to fail');
}

async function completedSnapshot(em: Em, ec2: EC2Client, volumeId: string): Promise<string> {
  const { SnapshotId } = await ec2.send(new CreateSnapshotCommand({ VolumeId: volumeId }));
  await waitCompleted(em, ec2, SnapshotId!);
  return SnapshotId!;
}

/** Moves the emulator's clock past the pending time, then expects the snapshot completed. */
async function waitCompleted(em: Em, ec2: EC2Client, id: string): Promise<void> {
  await em.admin.advance(em.options.pendingMs);
  const { Snapshots } = await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [id] }));
  if (Snapshots?.[0]?.State !== 'completed')
    throw new Error(`${id} is ${Snapshots?.[0]?.State}, not completed`);
}

async function started(
  ebs: EBSClient,
  input: Partial<ConstructorParameters<typeof StartSnapshotCommand>[0]> = {},
) {
  return ebs.send(new StartSnapshotCommand({ VolumeSize: 1, ...input }));
}

async function put(
  ebs: EBSClient,
  snapshotId: string,
  index: number,
  data: Buffer,
  checksum = sha(data).toString('base64'),
) {
  return ebs.send(
    new PutSnapshotBlockCommand({
      SnapshotId: snapshotId,
      BlockIndex: index,
      BlockData: data,
      DataLength: data.length,
      Checksum: checksum,
      ChecksumAlgorithm: 'SHA256',
    }),
  );
}

function linear(blocks: Buffer[]): string {
  const h = createHash('sha256');
  for (const b of blocks) h.update(sha(b));
  return h.digest('base64');
}

describe('emulator, through the real SDK over HTTP', () => {
  let em: Em;
  let ec2: EC2Client;
  let ebs: EBSClient;

  beforeAll(async () => {
    em = await emulator();
    ec2 = new EC2Client(sdkConfig(em));
    ebs = new EBSClient(sdkConfig(em));
  });
  afterAll(async () => {
    ec2.destroy();
    ebs.destroy();
    await em.close();
  });

  it('lists only written blocks, ascending, paged by MaxResults (at least 100) and NextToken', async () => {
    const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 250, seed: 11 } });
    const snap = await completedSnapshot(em, ec2, volumeId);
    const sizes: number[] = [];
    const indices: number[] = [];
    let token: string | undefined;
    do {
      const page = await ebs.send(
        new ListSnapshotBlocksCommand({ SnapshotId: snap, MaxResults: 100, NextToken: token }),
      );
      sizes.push(page.Blocks!.length);
      indices.push(...page.Blocks!.map((b) => b.BlockIndex!));
      expect(page.BlockSize).toBe(BLOCK);
      expect(page.VolumeSize).toBe(1);
      token = page.NextToken;
    } while (token);
    expect(sizes).toEqual([100, 100, 50]);
    expect(indices).toEqual([...indices].sort((a, b) => a - b));
    expect(new Set(indices).size).toBe(250);
    const blocks = (await em.admin.call<{ blocks: number[] }>('GET', `snapshots/${snap}/blocks`)).blocks;
    expect(indices).toEqual(blocks);
    const small = await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: snap, MaxResults: 10 }));
    expect(small.Blocks!.length).toBe(100);
  });

  it('captures the volume at snapshot time: later writes do not reach the snapshot', async () => {
    const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 20, seed: 12 } });
    const snap = await completedSnapshot(em, ec2, volumeId);
    const before = await em.admin.snapshotDigest(snap);
    const mutated = await em.admin.call<{ written: number[] }>('POST', `volumes/${volumeId}/mutate`, {
      write: { blocks: 5, seed: 99 },
    });
    expect(mutated.written).toHaveLength(5);
    expect(await em.admin.snapshotDigest(snap)).toEqual(before);
    expect((await em.admin.volumeDigest(volumeId)).digest).not.toBe(before.digest);
  });

  it('refuses EBS direct reads while the snapshot is pending', async () => {
    em.options.pendingMs = 3_600_000; // pending until the test moves the clock on
    try {
      const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 3, seed: 13 } });
      const { SnapshotId } = await ec2.send(new CreateSnapshotCommand({ VolumeId: volumeId }));
      const err = await errorOf(ebs.send(new ListSnapshotBlocksCommand({ SnapshotId })));
      expect(err.name).toBe('ValidationException');
      expect(err.message).toMatch(/not in the completed state/);
      const getErr = await errorOf(
        ebs.send(new GetSnapshotBlockCommand({ SnapshotId, BlockIndex: 0, BlockToken: 'AAAA' })),
      );
      expect(getErr.name).toBe('ValidationException');
      expect(getErr.message).toMatch(/not in the completed state/);
      await waitCompleted(em, ec2, SnapshotId!);
      const page = await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId }));
      expect(page.Blocks).toHaveLength(3);
    } finally {
      em.options.pendingMs = 50;
    }
  });

  it('returns each block with a correct SHA-256 checksum, and the admin digest matches the data', async () => {
    const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 4, seed: 14 } });
    const snap = await completedSnapshot(em, ec2, volumeId);
    const page = await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: snap }));
    const digest = createHash('sha256');
    for (const b of page.Blocks!) {
      const got = await ebs.send(
        new GetSnapshotBlockCommand({ SnapshotId: snap, BlockIndex: b.BlockIndex, BlockToken: b.BlockToken }),
      );
      const data = Buffer.from(await got.BlockData!.transformToByteArray());
      expect(got.ChecksumAlgorithm).toBe('SHA256');
      expect(got.DataLength).toBe(BLOCK);
      expect(got.Checksum).toBe(sha(data).toString('base64'));
      const index = Buffer.alloc(8);
      index.writeBigUInt64BE(BigInt(b.BlockIndex!));
      digest.update(index).update(sha(data));
    }
    expect((await em.admin.snapshotDigest(snap)).digest).toBe(digest.digest('hex'));
  });

  it('expires block tokens and page tokens', async () => {
    const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 150, seed: 15 } });
    const snap = await completedSnapshot(em, ec2, volumeId);
    // A minute of life, then the clock moves past it: no race with a loaded machine.
    em.options.blockTokenTtlMs = 60_000;
    em.options.pageTokenTtlMs = 60_000;
    try {
      const page = await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: snap, MaxResults: 100 }));
      expect(page.NextToken).toBeDefined();
      await em.admin.advance(60_000);
      const b = page.Blocks![0]!;
      const blockErr = await errorOf(
        ebs.send(
          new GetSnapshotBlockCommand({
            SnapshotId: snap,
            BlockIndex: b.BlockIndex,
            BlockToken: b.BlockToken,
          }),
        ),
      );
      expect(blockErr.name).toBe('ValidationException');
      expect(blockErr.Reason).toBe('INVALID_BLOCK_TOKEN');
      const pageErr = await errorOf(
        ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: snap, NextToken: page.NextToken })),
      );
      expect(pageErr.name).toBe('ValidationException');
      expect(pageErr.Reason).toBe('INVALID_PAGE_TOKEN');
    } finally {
      em.options.blockTokenTtlMs = 7 * 86400_000;
      em.options.pageTokenTtlMs = 3600_000;
    }
  });

  it('refuses a block token used for another block', async () => {
    const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 2, seed: 16 } });
    const snap = await completedSnapshot(em, ec2, volumeId);
    const [a, b] = (await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: snap }))).Blocks!;
    const err = await errorOf(
      ebs.send(
        new GetSnapshotBlockCommand({
          SnapshotId: snap,
          BlockIndex: a!.BlockIndex,
          BlockToken: b!.BlockToken,
        }),
      ),
    );
    expect(err.Reason).toBe('INVALID_BLOCK_TOKEN');
  });

  it('ListChangedBlocks: changes across a lineage, blocks in one side only, empty pages with a NextToken', async () => {
    em.options.changedBlocksWindow = 256;
    try {
      const { volumeId } = await em.admin.volume({ sizeGiB: 4, fill: { blocks: 30, seed: 17 } });
      const first = await completedSnapshot(em, ec2, volumeId);
      const before = (await em.admin.call<{ blocks: number[] }>('GET', `snapshots/${first}/blocks`)).blocks;
      const mutation = await em.admin.call<{ written: number[]; unwritten: number[] }>(
        'POST',
        `volumes/${volumeId}/mutate`,
        {
          write: { blocks: 4, seed: 77 },
          unwrite: before.slice(0, 2),
        },
      );
      const second = await completedSnapshot(em, ec2, volumeId);
      const changed: { BlockIndex?: number; FirstBlockToken?: string; SecondBlockToken?: string }[] = [];
      let token: string | undefined;
      let pages = 0;
      let emptyWithToken = 0;
      do {
        const page = await ebs.send(
          new ListChangedBlocksCommand({
            FirstSnapshotId: first,
            SecondSnapshotId: second,
            NextToken: token,
          }),
        );
        pages++;
        if (page.ChangedBlocks!.length === 0 && page.NextToken) emptyWithToken++;
        changed.push(...page.ChangedBlocks!);
        token = page.NextToken;
      } while (token);
      expect(pages).toBe(8192 / 256);
      expect(emptyWithToken).toBeGreaterThan(0);
      const expected = [...new Set([...mutation.written, ...mutation.unwritten])].sort((a, b) => a - b);
      expect(changed.map((c) => c.BlockIndex)).toEqual(expected);
      for (const c of changed) {
        const unwritten =
          mutation.unwritten.includes(c.BlockIndex!) && !mutation.written.includes(c.BlockIndex!);
        expect(c.SecondBlockToken === undefined).toBe(unwritten);
      }
    } finally {
      em.options.changedBlocksWindow = 65536;
    }
  });

  it('ListChangedBlocks refuses snapshots that share no lineage', async () => {
    const a = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 1, seed: 18 } });
    const b = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 1, seed: 19 } });
    const sa = await completedSnapshot(em, ec2, a.volumeId);
    const sb = await completedSnapshot(em, ec2, b.volumeId);
    const err = await errorOf(
      ebs.send(new ListChangedBlocksCommand({ FirstSnapshotId: sa, SecondSnapshotId: sb })),
    );
    expect(err.name).toBe('ValidationException');
    expect(err.Reason).toBe('UNRELATED_SNAPSHOTS');
    expect(err.$metadata.httpStatusCode).toBe(400);
  });

  it('takes a signed x-amz-content-sha256 as the payload hash only when it is the hash of the body', async () => {
    // SigV4 ("Create a canonical request"): HashedPayload is the hash of the body that was sent.
    const s = await started(ebs);
    const claiming = (digest: Buffer) => {
      const client = new EBSClient(sdkConfig(em));
      client.middlewareStack.add(
        (next) => (args) => {
          const request = args.request as { headers: Record<string, string> };
          request.headers['x-amz-content-sha256'] = digest.toString('hex');
          return next(args);
        },
        { step: 'build', name: 'claimPayloadHash' },
      );
      return client;
    };
    const honest = claiming(sha(block(3)));
    await put(honest, s.SnapshotId!, 0, block(3), sha(block(3)).toString('base64'));
    const lying = claiming(sha(block(5)));
    const err = await errorOf(put(lying, s.SnapshotId!, 1, block(4), sha(block(4)).toString('base64')));
    expect(err.$metadata?.httpStatusCode).toBe(403);
    expect(err.message).toMatch(/x-amz-content-sha256 header does not match the payload/);
    honest.destroy();
    lying.destroy();
  });

  it('holds block requests to a per-second quota, refusing the excess with RequestThrottledException', async () => {
    // The EBS direct APIs' request-rate quotas (AWS General Reference, EBS endpoints and quotas).
    const s = await started(ebs);
    const once = new EBSClient({ ...sdkConfig(em), maxAttempts: 1 });
    em.options.blockRequestsPerSecond = 5;
    try {
      const results = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) =>
          put(once, s.SnapshotId!, i, block(i + 1), sha(block(i + 1)).toString('base64')),
        ),
      );
      const refused = results.filter((r) => r.status === 'rejected');
      // A burst of a tenth of a second (at least one request) passes; the rest is over the rate.
      expect(refused.length).toBeGreaterThanOrEqual(15);
      for (const r of refused) expect(r.reason.name).toBe('RequestThrottledException');
    } finally {
      em.options.blockRequestsPerSecond = 0;
      once.destroy();
    }
  });

  it('PutSnapshotBlock verifies the checksum it is sent', async () => {
    const s = await started(ebs);
    const err = await errorOf(put(ebs, s.SnapshotId!, 0, block(1), sha(block(2)).toString('base64')));
    expect(err.name).toBe('ValidationException');
    expect(err.message).toMatch(/checksum/);
  });

  it('StartSnapshot with ParentSnapshotId inherits the parent blocks; the chain shares a lineage', async () => {
    const parent = await started(ebs, { VolumeSize: 1 });
    await put(ebs, parent.SnapshotId!, 1, block(1));
    await put(ebs, parent.SnapshotId!, 5, block(5));
    await ebs.send(new CompleteSnapshotCommand({ SnapshotId: parent.SnapshotId, ChangedBlocksCount: 2 }));
    await waitCompleted(em, ec2, parent.SnapshotId!);
    const child = await started(ebs, { VolumeSize: 2, ParentSnapshotId: parent.SnapshotId });
    expect(child.ParentSnapshotId).toBe(parent.SnapshotId);
    await put(ebs, child.SnapshotId!, 5, block(55));
    await put(ebs, child.SnapshotId!, 9, block(9));
    await ebs.send(
      new CompleteSnapshotCommand({
        SnapshotId: child.SnapshotId,
        ChangedBlocksCount: 2,
        Checksum: linear([block(55), block(9)]),
        ChecksumAlgorithm: 'SHA256',
        ChecksumAggregationMethod: 'LINEAR',
      }),
    );
    await waitCompleted(em, ec2, child.SnapshotId!);
    const blocks = await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: child.SnapshotId }));
    expect(blocks.Blocks!.map((b) => b.BlockIndex)).toEqual([1, 5, 9]);
    const changed = await ebs.send(
      new ListChangedBlocksCommand({
        FirstSnapshotId: parent.SnapshotId,
        SecondSnapshotId: child.SnapshotId,
      }),
    );
    expect(changed.ChangedBlocks!.map((b) => b.BlockIndex)).toEqual([5, 9]);
  });

  it('StartSnapshot refuses a parent larger than the new volume, or one not completed', async () => {
    const big = await started(ebs, { VolumeSize: 4 });
    await ebs.send(new CompleteSnapshotCommand({ SnapshotId: big.SnapshotId, ChangedBlocksCount: 0 }));
    const pendingErr = await errorOf(started(ebs, { VolumeSize: 4, ParentSnapshotId: big.SnapshotId }));
    expect(pendingErr.name).toBe('ValidationException');
    await waitCompleted(em, ec2, big.SnapshotId!);
    const err = await errorOf(started(ebs, { VolumeSize: 2, ParentSnapshotId: big.SnapshotId }));
    expect(err.name).toBe('ValidationException');
    expect(err.Reason).toBe('INVALID_VOLUME_SIZE');
  });

  it('StartSnapshot is idempotent for a ClientToken, and a reused token with other parameters is a ConflictException', async () => {
    const a = await started(ebs, { VolumeSize: 3, ClientToken: 'restore-job-1' });
    const b = await started(ebs, { VolumeSize: 3, ClientToken: 'restore-job-1' });
    expect(b.SnapshotId).toBe(a.SnapshotId);
    const err = await errorOf(started(ebs, { VolumeSize: 4, ClientToken: 'restore-job-1' }));
    expect(err.name).toBe('ConflictException');
    expect(err.$metadata.httpStatusCode).toBe(409);
  });

  it('StartSnapshot honours Encrypted and KmsKeyArn', async () => {
    const key = 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
    const s = await started(ebs, { Encrypted: true, KmsKeyArn: key });
    expect(s.KmsKeyArn).toBe(key);
    expect(s.SseType).toBe('sse-kms');
    const err = await errorOf(started(ebs, { KmsKeyArn: key }));
    expect(err.name).toBe('ValidationException');
  });

  it('StartSnapshot with a parent refuses Encrypted and KmsKeyArn, and the child takes the parent key (encryption outcomes)', async () => {
    const key = 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
    const parent = await started(ebs, { Encrypted: true, KmsKeyArn: key });
    await ebs.send(new CompleteSnapshotCommand({ SnapshotId: parent.SnapshotId, ChangedBlocksCount: 0 }));
    await waitCompleted(em, ec2, parent.SnapshotId!);
    for (const extra of [{ Encrypted: true }, { Encrypted: false }, { Encrypted: true, KmsKeyArn: key }]) {
      const err = await errorOf(started(ebs, { ParentSnapshotId: parent.SnapshotId, ...extra }));
      expect(err.name, JSON.stringify(extra)).toBe('ValidationException');
    }
    const child = await started(ebs, { ParentSnapshotId: parent.SnapshotId });
    expect(child.KmsKeyArn).toBe(key);
    expect(child.SseType).toBe('sse-kms');
    const plainParent = await started(ebs, {});
    await ebs.send(
      new CompleteSnapshotCommand({ SnapshotId: plainParent.SnapshotId, ChangedBlocksCount: 0 }),
    );
    await waitCompleted(em, ec2, plainParent.SnapshotId!);
    const plainChild = await started(ebs, { ParentSnapshotId: plainParent.SnapshotId });
    expect(plainChild.SseType).toBe('none');
  });

  it('a started snapshot that is never completed goes to error after its Timeout', async () => {
    const s = await started(ebs, { Timeout: 10 });
    const record = em.world.snapshots.get(s.SnapshotId!)!;
    record.deadline = Date.now() - 1;
    const { Snapshots } = await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [s.SnapshotId!] }));
    expect(Snapshots![0]!.State).toBe('error');
    const err = await errorOf(put(ebs, s.SnapshotId!, 0, block(3)));
    expect(err.name).toBe('ValidationException');
  });

  it('CompleteSnapshot seals asynchronously: a wrong ChangedBlocksCount or LINEAR aggregate ends the snapshot in error', async () => {
    const complete = (id: string, count: number, checksum?: string) =>
      ebs.send(
        new CompleteSnapshotCommand({
          SnapshotId: id,
          ChangedBlocksCount: count,
          ...(checksum !== undefined && {
            Checksum: checksum,
            ChecksumAlgorithm: 'SHA256',
            ChecksumAggregationMethod: 'LINEAR',
          }),
        }),
      );
    const twoBlocks = async () => {
      const s = await started(ebs);
      await put(ebs, s.SnapshotId!, 2, block(2));
      await put(ebs, s.SnapshotId!, 3, block(3));
      return s.SnapshotId!;
    };
    const finalState = async (id: string) => {
      await em.admin.advance(em.options.pendingMs);
      const [snapshot] =
        (await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [id] }))).Snapshots ?? [];
      return snapshot;
    };
    const miscounted = await twoBlocks();
    expect((await complete(miscounted, 3)).Status).toBe('pending');
    const misordered = await twoBlocks();
    expect((await complete(misordered, 2, linear([block(3), block(2)]))).Status).toBe('pending');
    const right = await twoBlocks();
    expect((await complete(right, 2, linear([block(2), block(3)]))).Status).toBe('pending');
    expect(await finalState(miscounted)).toMatchObject({
      State: 'error',
      StateMessage: expect.stringMatching(/ChangedBlocksCount 3/),
    });
    expect(await finalState(misordered)).toMatchObject({
      State: 'error',
      StateMessage: expect.stringMatching(/aggregate/),
    });
    expect((await finalState(right))?.State).toBe('completed');
  });

  it('StartSnapshot refuses what its reference does not take: 51 tags, long keys, values, descriptions, tokens, and alias ARNs', async () => {
    const refused = async (input: Partial<ConstructorParameters<typeof StartSnapshotCommand>[0]>) =>
      (await errorOf(started(ebs, input))).message;
    const tags = (n: number) => Array.from({ length: n }, (_, i) => ({ Key: `k${i}`, Value: 'v' }));
    expect(await refused({ Tags: tags(51) })).toMatch(/At most 50 tags/);
    expect(await refused({ Tags: [{ Key: 'k'.repeat(128), Value: 'v' }] })).toMatch(/1 to 127 characters/);
    expect(await refused({ Tags: [{ Key: 'k', Value: 'v'.repeat(256) }] })).toMatch(/longer than 255/);
    expect(await refused({ Description: 'd'.repeat(256) })).toMatch(/Description must be at most 255/);
    expect(await refused({ ClientToken: 't'.repeat(256) })).toMatch(/ClientToken must be 1 to 255/);
    expect(
      await refused({ Encrypted: true, KmsKeyArn: 'arn:aws:kms:us-east-1:123456789012:alias/backup' }),
    ).toMatch(/is not a KMS key ARN/);
    // The limits themselves are taken.
    const atLimits = await started(ebs, {
      Tags: [...tags(49), { Key: 'k'.repeat(127), Value: 'v'.repeat(255) }],
      Description: 'd'.repeat(255),
      ClientToken: 't'.repeat(255),
    });
    expect(atLimits.Status).toBe('pending');
  });

  it('with encryption by default, StartSnapshot encrypts a snapshot without a parent and refuses an unencrypted parent', async () => {
    const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 1, seed: 2 } });
    const { SnapshotId: parent } = await ec2.send(new CreateSnapshotCommand({ VolumeId: volumeId }));
    await waitCompleted(em, ec2, parent!);
    await em.admin.call('POST', 'encryption-by-default', { region: 'us-east-1' });
    try {
      expect((await ec2.send(new GetEbsEncryptionByDefaultCommand({}))).EbsEncryptionByDefault).toBe(true);
      const fresh = await started(ebs);
      const [described] =
        (await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [fresh.SnapshotId!] }))).Snapshots ?? [];
      expect(described?.Encrypted).toBe(true);
      expect((await errorOf(started(ebs, { ParentSnapshotId: parent }))).message).toMatch(
        /unencrypted and the account encrypts EBS by default/,
      );
    } finally {
      await em.admin.call('POST', 'encryption-by-default', { region: 'us-east-1', enabled: false });
    }
  });

  it('CreateVolume takes gp3 up to 80,000 IOPS and 2,000 MiB/s, and no more', async () => {
    const create = (Iops: number, Throughput: number) =>
      ec2.send(
        new CreateVolumeCommand({
          AvailabilityZone: 'us-east-1a',
          Size: 160,
          VolumeType: 'gp3',
          Iops,
          Throughput,
        }),
      );
    expect((await create(80_000, 2_000)).VolumeId).toMatch(/^vol-/);
    expect((await errorOf(create(80_001, 2_000))).message).toMatch(/outside 3000-80000/);
    expect((await errorOf(create(80_000, 2_001))).message).toMatch(/outside 125-2000/);
  });

  it('answers ResourceNotFoundException for a while after StartSnapshot (eventual consistency)', async () => {
    em.options.startDelayMs = 60_000;
    try {
      const s = await started(ebs);
      const err = await errorOf(put(ebs, s.SnapshotId!, 0, block(1)));
      expect(err.name).toBe('ResourceNotFoundException');
      expect(err.$metadata.httpStatusCode).toBe(404);
      await em.admin.advance(60_000);
      const ok = await put(ebs, s.SnapshotId!, 0, block(1));
      expect(ok.Checksum).toBe(sha(block(1)).toString('base64'));
    } finally {
      em.options.startDelayMs = 0;
    }
  });

  it('CreateSnapshots snapshots an instance’s volumes together, honouring ExcludeDataVolumeIds', async () => {
    const inst = await em.admin.instance({ volumes: [{ sizeGiB: 1 }, { sizeGiB: 1 }, { sizeGiB: 1 }] });
    const out = await ec2.send(
      new CreateSnapshotsCommand({
        InstanceSpecification: { InstanceId: inst.instanceId, ExcludeDataVolumeIds: [inst.volumeIds[2]!] },
        TagSpecifications: [{ ResourceType: 'snapshot', Tags: [{ Key: 'k', Value: 'v' }] }],
      }),
    );
    expect(out.Snapshots!.map((s) => s.VolumeId).sort()).toEqual(inst.volumeIds.slice(0, 2).sort());
    const tagged = await ec2.send(
      new DescribeSnapshotsCommand({ Filters: [{ Name: 'tag:k', Values: ['v'] }], OwnerIds: ['self'] }),
    );
    expect(tagged.Snapshots!.map((s) => s.SnapshotId).sort()).toEqual(
      out.Snapshots!.map((s) => s.SnapshotId).sort(),
    );
    const rootErr = await errorOf(
      ec2.send(
        new CreateSnapshotsCommand({
          InstanceSpecification: { InstanceId: inst.instanceId, ExcludeDataVolumeIds: [inst.volumeIds[0]!] },
        }),
      ),
    );
    expect(rootErr.name).toBe('InvalidParameterValue');
  });

  it('rejects an unknown filter name and an unknown instance as AWS does', async () => {
    const filterErr = await errorOf(
      ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'no-such-filter', Values: ['x'] }] })),
    );
    expect(filterErr.name).toBe('InvalidParameterValue');
    const idErr = await errorOf(
      ec2.send(new DescribeInstancesCommand({ InstanceIds: ['i-0123456789abcdef0'] })),
    );
    expect(idErr.name).toBe('InvalidInstanceID.NotFound');
  });

  it('rejects a wrong secret key on every service', async () => {
    const bad = { ...sdkConfig(em), credentials: { ...credentials, secretAccessKey: 'wrong' } };
    const ec2Err = await errorOf(new EC2Client(bad).send(new DescribeInstancesCommand({})));
    expect(ec2Err.name).toBe('AuthFailure');
    const ebsErr = await errorOf(
      new EBSClient(bad).send(new ListSnapshotBlocksCommand({ SnapshotId: 'snap-0123456789abcdef0' })),
    );
    expect(ebsErr.name).toBe('InvalidSignatureException');
    const unknown = {
      ...sdkConfig(em),
      credentials: { accessKeyId: 'AKIAUNKNOWN', secretAccessKey: credentials.secretAccessKey },
    };
    const unknownErr = await errorOf(
      new EBSClient(unknown).send(new ListSnapshotBlocksCommand({ SnapshotId: 'snap-0123456789abcdef0' })),
    );
    expect(unknownErr.name).toBe('UnrecognizedClientException');
  });

  it('serves one region per signing scope: resources of one region are invisible from another', async () => {
    const inst = await em.admin.instance({ region: 'eu-west-1', volumes: [{ sizeGiB: 1 }] });
    const eu = new EC2Client(sdkConfig(em, 'eu-west-1'));
    const found = await eu.send(new DescribeInstancesCommand({ InstanceIds: [inst.instanceId] }));
    expect(found.Reservations![0]!.Instances![0]!.Placement!.AvailabilityZone).toBe('eu-west-1a');
    const err = await errorOf(ec2.send(new DescribeInstancesCommand({ InstanceIds: [inst.instanceId] })));
    expect(err.name).toBe('InvalidInstanceID.NotFound');
    eu.destroy();
  });
});

describe('emulator fault injection', () => {
  let em: Em;
  let ebs: EBSClient;
  let ec2: EC2Client;
  let snap: string;
  let first: { BlockIndex?: number; BlockToken?: string };

  beforeAll(async () => {
    em = await emulator();
    ec2 = new EC2Client(sdkConfig(em));
    ebs = new EBSClient({ ...sdkConfig(em), maxAttempts: 3 });
    const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 2, seed: 20 } });
    snap = await completedSnapshot(em, ec2, volumeId);
    first = (await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: snap }))).Blocks![0]!;
  });
  afterAll(async () => {
    ebs.destroy();
    ec2.destroy();
    await em.close();
  });

  const get = () =>
    ebs.send(
      new GetSnapshotBlockCommand({
        SnapshotId: snap,
        BlockIndex: first.BlockIndex,
        BlockToken: first.BlockToken,
      }),
    );

  it('throttles with RequestThrottledException (400), which the SDK retries', async () => {
    em.options.throttleRate = 1;
    try {
      const err = await errorOf(get());
      expect(err.name).toBe('RequestThrottledException');
      expect(err.$metadata.httpStatusCode).toBe(400);
      expect(err.Reason).toBe('ACCOUNT_THROTTLED');
      expect(err.$metadata.attempts).toBe(3);
    } finally {
      em.options.throttleRate = 0;
    }
  });

  it('fails with InternalServerException (500), which the SDK retries', async () => {
    em.options.errorRate = 1;
    try {
      const err = await errorOf(get());
      expect(err.name).toBe('InternalServerException');
      expect(err.$metadata.httpStatusCode).toBe(500);
      expect(err.$metadata.attempts).toBe(3);
    } finally {
      em.options.errorRate = 0;
    }
  });

  it('EC2 throttles with RequestLimitExceeded (503)', async () => {
    em.options.ec2ThrottleRate = 1;
    try {
      const client = new EC2Client({ ...sdkConfig(em), maxAttempts: 2 });
      const err = await errorOf(client.send(new DescribeInstancesCommand({})));
      expect(err.name).toBe('RequestLimitExceeded');
      expect(err.$metadata.httpStatusCode).toBe(503);
      expect(err.$metadata.attempts).toBe(2);
    } finally {
      em.options.ec2ThrottleRate = 0;
    }
  });

  it('resets the connection in the middle of a block body: the SDK has returned, reading the body fails', async () => {
    em.options.resetRate = 1;
    try {
      const response = await get();
      await expect(response.BlockData!.transformToByteArray()).rejects.toThrow();
    } finally {
      em.options.resetRate = 0;
    }
  });

  it('corrupts block data so it no longer matches its checksum', async () => {
    em.options.corruptRate = 1;
    try {
      const response = await get();
      const data = Buffer.from(await response.BlockData!.transformToByteArray());
      expect(sha(data).toString('base64')).not.toBe(response.Checksum);
    } finally {
      em.options.corruptRate = 0;
    }
  });

  it('adds latency and caps bandwidth', async () => {
    em.options.latencyMs = 100;
    try {
      const t0 = Date.now();
      await (await get()).BlockData!.transformToByteArray();
      expect(Date.now() - t0).toBeGreaterThanOrEqual(95);
    } finally {
      em.options.latencyMs = 0;
    }
    em.options.bandwidthMbps = 20; // 2.5 MB/s: four blocks take about 0.8 s
    try {
      const t0 = Date.now();
      for (let i = 0; i < 4; i++) await (await get()).BlockData!.transformToByteArray();
      expect(Date.now() - t0).toBeGreaterThanOrEqual(700);
    } finally {
      em.options.bandwidthMbps = 0;
    }
  });
});

describe('STS AssumeRole through the client factory', () => {
  it('hands out expiring credentials that the factory refreshes during a long operation', async () => {
    const em = await emulator({ stsDurationS: 1 });
    try {
      const config = defaultConfig();
      config.aws = {
        ...config.aws,
        region: 'us-east-1',
        endpointUrl: em.url,
        ...credentials,
        roleArn: 'arn:aws:iam::123456789012:role/backup',
      };
      const clients = createClients(config.aws, { region: config.aws.region ?? 'us-east-1' });
      const identity = await clients.credentials();
      expect(identity.accessKeyId).toMatch(/^ASIA/);
      expect(identity.expiration!.getTime() - Date.now()).toBeLessThanOrEqual(1000);
      // The same temporary key, used directly after it expired, is refused.
      await em.admin.advance(1100);
      const stale = new EC2Client({ ...sdkConfig(em), credentials: identity });
      const err = await errorOf(stale.send(new DescribeInstancesCommand({})));
      expect(err.name).toBe('RequestExpired');
      stale.destroy();
      // A long operation through the factory's clients outlives several credential lifetimes.
      // 3.5 s of AWS's time, 100 ms a call, on the emulator's clock.
      for (let calls = 0; calls < 35; calls++) {
        await clients.ec2.send(new DescribeInstancesCommand({}));
        await em.admin.advance(100);
      }
      expect((await em.admin.requests())['sts:AssumeRole']).toBeGreaterThanOrEqual(3);
      clients.destroy();
    } finally {
      await em.close();
    }
  });
});
