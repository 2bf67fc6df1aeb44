/** The slow tier: a 9.8 GiB volume streamed whole, in bounded memory. */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { readStream } from '../../src/stream/reader.js';
import { BIN, withEmulator, writeConfig } from '../helpers.js';

describe('a volume with 20,000 written blocks', () => {
  it('streams every block in ascending order with the right data, in bounded memory', async () => {
    await withEmulator({}, async (em, dir) => {
      const { volumeId } = await em.admin.volume({ sizeGiB: 16, fill: { blocks: 20_000, seed: 10 } });
      const config = writeConfig(dir.path, em, '[backup]\nworkers = 8\n');
      const child = spawn(
        process.execPath,
        [BIN, 'backup', `--config=${config}`, `--volume=${volumeId}`, '--job=big'],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      const digest = createHash('sha256');
      const indexBytes = Buffer.alloc(8);
      let last = -1;
      let count = 0;
      let peakRss = 0;
      const rssTimer = setInterval(() => {
        try {
          const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
          peakRss = Math.max(peakRss, Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0));
        } catch {
          /* the process has ended */
        }
      }, 200);
      const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
      const report = await readStream(child.stdout, 'backup', {
        block: (_meta, index, _data, blockDigest) => {
          expect(index).toBeGreaterThan(last);
          last = index;
          count++;
          indexBytes.writeBigUInt64BE(BigInt(index));
          digest.update(indexBytes).update(blockDigest);
        },
      });
      clearInterval(rssTimer);
      expect(await exited).toBe(0);
      expect(count).toBe(20_000);
      expect(report.volumes[0]!.blocks).toBe(20_000);
      const snapshot = (await em.admin.state()).snapshots[0]!;
      expect({ digest: digest.digest('hex'), blocks: count }).toEqual(
        await em.admin.snapshotDigest(snapshot.SnapshotId),
      );
      // 8 workers and a window of 16 blocks: memory stays far below the 10 GiB streamed.
      expect(peakRss).toBeGreaterThan(0);
      expect(peakRss).toBeLessThan(400 * 1024);
    });
  }, 300_000);
});
