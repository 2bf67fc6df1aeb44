import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, withEmulator, writeConfig } from '../helpers.js';
import { block, buildStream } from '../stream-builder.js';
import { splitMembers } from '../tar-members.js';

const VOLUME = 'vol-0b000000000000001';

describe('a restore to AWS resumes only the pending snapshot of the same stream', () => {
  it('a cut stream with a damaged sparse map leaves a pending snapshot the intact stream does not resume: it restores, and the stale one is marked abandoned', async () => {
    await withEmulator({}, async (em, dir) => {
      const config = writeConfig(dir.path, em, '', 'proof');
      // Blocks 2, 5 and 7: their byte offsets have as many digits, so one can take another's place.
      const blocks = new Map([2, 5, 7].map((i) => [i, block(900 + i)] as const));
      const intact = await buildStream({
        job: 'p1',
        kind: 'volumes',
        config: 'proof',
        volumes: [{ volumeId: VOLUME, blocks }],
      });
      const { members } = splitMembers(intact);
      const data = members.find((m) => m.name === `${VOLUME}.ebs`);
      const sum = members.find((m) => m.name === `${VOLUME}.sum.json`);
      if (data === undefined || sum === undefined) throw new Error('members not found');
      const map = intact.subarray(data.data, data.data + 512).toString('latin1');
      expect(map).toContain(`\n${5 * 524288}\n`);
      // Block 5's entry now says block 6; the stream is cut before the sums that would prove it wrong.
      const damaged = Buffer.from(intact.subarray(0, sum.start));
      damaged.write(map.replace(`\n${5 * 524288}\n`, `\n${6 * 524288}\n`), data.data, 'latin1');
      const damagedFile = join(dir.path, 'damaged.tar');
      const intactFile = join(dir.path, 'intact.tar');
      writeFileSync(damagedFile, damaged);
      writeFileSync(intactFile, intact);

      const cut = await cli(['restore', `--config=${config}`, damagedFile]);
      expect(cut.code).toBe(1);
      expect(cut.stderr).toMatch(/incomplete|truncated|cut/i);
      const stale = (await em.admin.state()).snapshots.filter((s) => s.State === 'pending');
      expect(stale).toHaveLength(1);

      for (let attempt = 0; attempt < 2; attempt++) {
        const restored = await cli(['restore', `--config=${config}`, intactFile]);
        expect(restored.code, restored.stderr).toBe(0);
        if (attempt === 0)
          expect(restored.stderr).toContain(
            `${stale[0]?.SnapshotId}, left pending by an attempt that read another copy of job p1's stream, not resumed: marked abandoned`,
          );
      }
      const state = await em.admin.state();
      const completed = state.snapshots.filter((s) => s.State === 'completed');
      expect(completed.length).toBeGreaterThanOrEqual(1);
      const expected = (await import('node:crypto')).createHash('sha256');
      const index = Buffer.alloc(8);
      for (const at of [2, 5, 7]) {
        index.writeBigUInt64BE(BigInt(at));
        expected.update(index).update(
          (await import('node:crypto'))
            .createHash('sha256')
            .update(blocks.get(at) ?? Buffer.alloc(0))
            .digest(),
        );
      }
      for (const snapshot of completed) {
        expect((await em.admin.snapshotDigest(snapshot.SnapshotId)).digest).toBe(
          expected.copy().digest('hex'),
        );
      }
      const abandoned = state.snapshots.find((s) => s.SnapshotId === stale[0]?.SnapshotId);
      expect(abandoned?.Tags?.some((t: { Key: string }) => t.Key === 'ec2-bpipe:abandoned')).toBe(true);
    });
  });
});
