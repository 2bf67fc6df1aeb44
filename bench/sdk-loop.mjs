/**
 * The baseline `npm run bench` compares ec2-bpipe with: the loop a user would write with the bare
 * AWS SDK, in plain JavaScript so that it loads no more than such a script would.
 *
 *   node bench/sdk-loop.mjs backup  ENDPOINT SNAPSHOT_ID WORKERS
 *     ListSnapshotBlocks page by page, GetSnapshotBlock with WORKERS requests in flight, bodies
 *     read and discarded.
 *   node bench/sdk-loop.mjs backup-verified ENDPOINT SNAPSHOT_ID WORKERS
 *     The same loop doing the least a backup must do with a block: keep it whole until its
 *     SHA-256 matched the checksum GetSnapshotBlock returned (hashed as the body arrives, on the
 *     one thread), then drop it. It shows what verification alone costs on this machine.
 *   node bench/sdk-loop.mjs restore ENDPOINT BLOCKS WORKERS
 *     StartSnapshot, PutSnapshotBlock of BLOCKS distinct blocks (each with the SHA-256 the API
 *     requires) with WORKERS requests in flight, CompleteSnapshot; prints the snapshot id.
 *
 * Credentials come from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), region
 * us-east-1. No verification beyond what the SDK and the API do (but in `backup-verified`): that is
 * the point of a baseline.
 */
import { createHash } from 'node:crypto';
import {
  CompleteSnapshotCommand,
  EBSClient,
  GetSnapshotBlockCommand,
  paginateListSnapshotBlocks,
  PutSnapshotBlockCommand,
  StartSnapshotCommand,
} from '@aws-sdk/client-ebs';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { Agent } from 'node:http';

const [mode, endpoint, arg, workersArg] = process.argv.slice(2);
const workers = Number(workersArg);
const BLOCK_SIZE = 512 * 1024;
const ebs = new EBSClient({
  region: 'us-east-1',
  endpoint,
  requestHandler: new NodeHttpHandler({ httpAgent: new Agent({ keepAlive: true, maxSockets: workers + 2 }) }),
});

/** Runs `task(item)` for every item of `items`, `workers` at a time. */
async function pool(items, task) {
  const running = new Set();
  for await (const item of items) {
    if (running.size >= workers) await Promise.race(running);
    const promise = task(item).finally(() => running.delete(promise));
    running.add(promise);
  }
  await Promise.all(running);
}

async function* blocksOf(snapshotId) {
  for await (const page of paginateListSnapshotBlocks(
    { client: ebs },
    { SnapshotId: snapshotId, MaxResults: 10000 },
  )) {
    yield* page.Blocks ?? [];
  }
}

if (mode === 'backup' || mode === 'backup-verified') {
  const verified = mode === 'backup-verified';
  await pool(blocksOf(arg), async (block) => {
    const response = await ebs.send(
      new GetSnapshotBlockCommand({
        SnapshotId: arg,
        BlockIndex: block.BlockIndex,
        BlockToken: block.BlockToken,
      }),
    );
    if (!verified) {
      for await (const _ of response.BlockData) {
        // discarded
      }
      return;
    }
    const hash = createHash('sha256');
    // Held until the digest is known, as a verifying backup must hold a block; dropped after.
    const chunks = [];
    for await (const chunk of response.BlockData) {
      hash.update(chunk);
      chunks.push(chunk);
    }
    if (hash.digest('base64') !== response.Checksum)
      throw new Error(`block ${block.BlockIndex}: checksum mismatch`);
  });
} else if (mode === 'restore') {
  const count = Number(arg);
  const started = await ebs.send(
    new StartSnapshotCommand({ VolumeSize: Math.ceil((count * BLOCK_SIZE) / 2 ** 30) + 1, Timeout: 60 }),
  );
  const template = Buffer.alloc(BLOCK_SIZE, 0x5a);
  async function* indices() {
    for (let i = 0; i < count; i++) yield i;
  }
  await pool(indices(), async (index) => {
    const data = Buffer.from(template);
    data.writeUInt32BE(index, 0);
    await ebs.send(
      new PutSnapshotBlockCommand({
        SnapshotId: started.SnapshotId,
        BlockIndex: index,
        BlockData: data,
        DataLength: BLOCK_SIZE,
        Checksum: createHash('sha256').update(data).digest('base64'),
        ChecksumAlgorithm: 'SHA256',
      }),
    );
  });
  await ebs.send(new CompleteSnapshotCommand({ SnapshotId: started.SnapshotId, ChangedBlocksCount: count }));
  process.stdout.write(`${started.SnapshotId}\n`);
} else {
  process.stderr.write(
    'usage: sdk-loop.mjs backup|backup-verified|restore ENDPOINT SNAPSHOT_ID|BLOCKS WORKERS\n',
  );
  process.exit(2);
}
ebs.destroy();
