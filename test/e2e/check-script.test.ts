import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, cli, tempDir } from '../helpers.js';
import { block, buildStream } from '../stream-builder.js';
import { splitMembers } from '../tar-members.js';

const SCRIPT = join(ROOT, 'examples', 'check-stream.sh');

/** docs/FORMAT.md says a stream can be checked with tar, sha256sum and a JSON reader: the script proves it. */
describe('checking a stream by hand (examples/check-stream.sh)', () => {
  it('agrees with ec2-bpipe verify on an intact stream, and refuses a damaged block and an edited member', async () => {
    const dir = tempDir();
    try {
      const stream = await buildStream({
        job: 'j1',
        volumes: [
          {
            volumeId: 'vol-0123456789abcdef0',
            blocks: new Map([
              [0, block(1)],
              [5, block(2)],
              [700, block(3)],
            ]),
          },
          { volumeId: 'vol-0fedcba9876543210', blocks: new Map([[3, block(4)]]) },
        ],
      });
      const file = join(dir.path, 'ok.tar');
      writeFileSync(file, stream);
      const byHand = execFileSync('bash', [SCRIPT, file], { encoding: 'utf8' });
      const verify = (await cli(['verify', file])).stdout.toString();
      const digests = (text: string) => [...text.matchAll(/sha256-indexed=([0-9a-f]{64})/g)].map((m) => m[1]);
      expect(digests(byHand)).toHaveLength(2);
      expect(digests(byHand)).toEqual(digests(verify));

      const { members } = splitMembers(stream);
      const ebs = members.find((m) => m.name === 'vol-0123456789abcdef0.ebs')!;
      const damaged = Buffer.from(stream);
      const at = ebs.data + 512 + 1000;
      damaged[at] = (damaged[at] ?? 0) ^ 1;
      writeFileSync(join(dir.path, 'damaged.tar'), damaged);
      const refused = spawnSync('bash', [SCRIPT, join(dir.path, 'damaged.tar')], { encoding: 'utf8' });
      expect(refused.status).toBe(1);
      expect(refused.stdout).toMatch(/vol-0123456789abcdef0: checksum differs/);

      const manifest = members.find((m) => m.name === 'manifest.json')!;
      const edited = Buffer.from(stream);
      edited.write(
        edited.toString('utf8', manifest.data, manifest.data + manifest.size).replace('"j1"', '"j9"'),
        manifest.data,
      );
      writeFileSync(join(dir.path, 'edited.tar'), edited);
      const editedRun = spawnSync('bash', [SCRIPT, join(dir.path, 'edited.tar')], { encoding: 'utf8' });
      expect(editedRun.status).toBe(1);
      expect(editedRun.stdout + editedRun.stderr).toMatch(/manifest\.json: FAILED/);
    } finally {
      dir.cleanup();
    }
  });
});
