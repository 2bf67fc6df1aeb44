import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, cli, withEmulator, writeConfig } from '../helpers.js';

/**
 * A hook that appends, to `file`, its name, its environment and how many snapshots the emulator
 * holds at that moment: the order of the lines and the counts prove when it ran.
 */
function recorder(dir: string, emulatorUrl: string, file: string, name: string, exit = 0): string {
  const script = join(dir, `${name}.mjs`);
  writeFileSync(
    script,
    `const state = await (await fetch(${JSON.stringify(`${emulatorUrl}/_admin/state`)})).json();
const { appendFileSync } = await import('node:fs');
const env = process.env;
appendFileSync(${JSON.stringify(file)}, [${JSON.stringify(name)}, env.EC2_BPIPE_JOB, env.EC2_BPIPE_INSTANCE_ID, env.EC2_BPIPE_VOLUME_IDS, state.snapshots.length].join(' ') + '\\n');
console.log(${JSON.stringify(`${name} says hello`)});
process.exit(${exit});
`,
  );
  return `${process.execPath} ${script}`;
}

describe('pre- and post-snapshot hooks', () => {
  it('run just before and right after the snapshots, with the job, instance and volumes, output in the log', async () => {
    await withEmulator({}, async (em, dir) => {
      const { instanceId, volumeIds } = await em.admin.instance({
        volumes: [{ sizeGiB: 1, fill: { blocks: 2, seed: 71 } }, { sizeGiB: 1 }],
      });
      const record = join(dir.path, 'hooks.log');
      const config = writeConfig(
        dir.path,
        em,
        `[backup]\ninstance-ids = ${instanceId}\npre-snapshot-command = ${recorder(dir.path, em.url, record, 'pre')}\npost-snapshot-command = ${recorder(dir.path, em.url, record, 'post')}\n`,
      );
      const result = await cli(['backup', `--config=${config}`, '--job=h1'], {
        stdoutFile: join(dir.path, 'h1.tar'),
      });
      expect(result.code, result.stderr).toBe(0);
      const volumes = [...volumeIds].join(',');
      expect(readFileSync(record, 'utf8').trim().split('\n')).toEqual([
        `pre h1 ${instanceId} ${volumes} 0`,
        `post h1 ${instanceId} ${volumes} 2`,
      ]);
      expect(result.stderr).toContain('pre-snapshot-command: pre says hello');
      expect(result.stderr).toContain('post-snapshot-command: post says hello');
    });
  });

  it('a failing pre command fails the backup before any snapshot, and the post command still runs', async () => {
    await withEmulator({}, async (em, dir) => {
      const { instanceId } = await em.admin.instance({ volumes: [{ sizeGiB: 1 }] });
      const record = join(dir.path, 'hooks.log');
      const config = writeConfig(
        dir.path,
        em,
        `[backup]\ninstance-ids = ${instanceId}\npre-snapshot-command = ${recorder(dir.path, em.url, record, 'pre', 3)}\npost-snapshot-command = ${recorder(dir.path, em.url, record, 'post')}\n`,
      );
      const result = await cli(['backup', `--config=${config}`, '--job=h2'], {
        stdoutFile: join(dir.path, 'h2.tar'),
      });
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/\[backup\] pre-snapshot-command exited 3: /);
      expect((await em.admin.state()).snapshots).toHaveLength(0);
      expect(
        readFileSync(record, 'utf8')
          .trim()
          .split('\n')
          .map((l) => l.split(' ')[0]),
      ).toEqual(['pre', 'post']);
    });
  });

  it('the post command runs when the snapshots fail, and a hook that hangs is stopped at hook-timeout', async () => {
    await withEmulator({}, async (em, dir) => {
      const { instanceId } = await em.admin.instance({ volumes: [{ sizeGiB: 1 }] });
      const record = join(dir.path, 'hooks.log');
      const config = writeConfig(
        dir.path,
        em,
        `[backup]\ninstance-ids = ${instanceId}\npre-snapshot-command = true\npost-snapshot-command = ${recorder(dir.path, em.url, record, 'post')}\n`,
      );
      await em.admin.call('POST', 'fail', {
        action: 'CreateSnapshots',
        code: 'UnauthorizedOperation',
        message: 'no',
        status: 403,
      });
      const failed = await cli(['backup', `--config=${config}`, '--job=h3'], {
        stdoutFile: join(dir.path, 'h3.tar'),
      });
      expect(failed.code).toBe(1);
      expect(readFileSync(record, 'utf8')).toMatch(/^post h3 /);

      const hanging = writeConfig(
        dir.path,
        em,
        `[backup]\ninstance-ids = ${instanceId}\npre-snapshot-command = sleep 30\nhook-timeout = 1\n`,
        'hang',
      );
      const started = Date.now();
      const stopped = await cli(['backup', `--config=${hanging}`, '--job=h4'], {
        stdoutFile: join(dir.path, 'h4.tar'),
      });
      expect(stopped.code).toBe(1);
      expect(stopped.stderr).toContain(
        '[backup] pre-snapshot-command did not finish within hook-timeout = 1 s and was stopped: sleep 30',
      );
      expect(Date.now() - started).toBeLessThan(10_000);
      expect((await em.admin.state()).snapshots).toHaveLength(0);
    });
  });

  it('a backup cancelled while the pre command runs still runs the post command before it exits', async () => {
    await withEmulator({}, async (em, dir) => {
      const { instanceId } = await em.admin.instance({ volumes: [{ sizeGiB: 1 }] });
      const record = join(dir.path, 'hooks.log');
      const started = join(dir.path, 'pre-started');
      const config = writeConfig(
        dir.path,
        em,
        `[backup]\ninstance-ids = ${instanceId}\npre-snapshot-command = touch ${started} && sleep 30\npost-snapshot-command = ${recorder(dir.path, em.url, record, 'post')}\n`,
      );
      const child = spawn(process.execPath, [BIN, 'backup', `--config=${config}`, '--job=h5'], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
      // Cancel the job (as Bacula does, with SIGTERM) once the pre command is under way.
      for (let i = 0; i < 200 && !existsSync(started); i++) await new Promise((r) => setTimeout(r, 25));
      expect(existsSync(started)).toBe(true);
      child.kill('SIGTERM');
      expect(await exited).toBe(143);
      expect(stderr).toContain('post-snapshot-command run after the interruption (exit 0)');
      expect(readFileSync(record, 'utf8')).toMatch(/^post h5 /);
      expect((await em.admin.state()).snapshots).toHaveLength(0);
    });
  });
});
