import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { calledActions } from '../aws-actions.js';
import { cli, withEmulator, writeConfig } from '../helpers.js';

interface Check {
  area: string;
  name: string;
  status: 'ok' | 'warn' | 'fail' | 'skip';
  detail: string;
  fix?: string;
}

/** A file daemon config whose Plugin Directory is `pluginDir`, and that directory, with or without bpipe-fd.so. */
function fdConf(dir: string, withPlugin: boolean): string {
  const pluginDir = join(dir, withPlugin ? 'plugins-ok' : 'plugins-empty');
  mkdirSync(pluginDir, { recursive: true });
  if (withPlugin) writeFileSync(join(pluginDir, 'bpipe-fd.so'), '');
  const conf = join(dir, `bacula-fd-${withPlugin ? 'ok' : 'empty'}.conf`);
  writeFileSync(conf, `FileDaemon {\n  Name = fd\n  Plugin Directory = ${pluginDir}\n}\n`);
  return conf;
}

describe('doctor', () => {
  it('passes a working setup, checking every permission of backup, DR copies and restore, and changes nothing', async () => {
    await withEmulator({}, async (em, dir) => {
      const { instanceId } = await em.admin.instance({
        volumes: [{ sizeGiB: 1, fill: { blocks: 2, seed: 81 } }],
      });
      // An instance and a detached volume: CreateSnapshots and CreateSnapshot are both checked.
      const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 1, seed: 83 } });
      mkdirSync(join(dir.path, 'state'));
      const config = writeConfig(
        dir.path,
        em,
        `[backup]\ninstance-ids = ${instanceId}\nvolume-ids = ${volumeId}\ncopy-to-region = eu-west-1\n`,
        'doc',
      );
      const result = await cli([
        'doctor',
        `--config=${config}`,
        `--bacula-fd-conf=${fdConf(dir.path, true)}`,
        '--json',
      ]);
      expect(result.code, result.stderr).toBe(0);
      const { failed, checks } = JSON.parse(result.stdout.toString()) as { failed: number; checks: Check[] };
      expect(failed).toBe(0);
      const status = new Map(checks.map((c) => [c.name.split(' ')[0], c.status]));
      for (const name of [
        'config',
        'credentials',
        'Bacula',
        'ec2:DescribeInstances',
        'ec2:CreateSnapshots',
        'ebs:ListSnapshotBlocks',
        'ebs:ListChangedBlocks',
        'ebs:GetSnapshotBlock',
        'ec2:CopySnapshot',
        'ebs:PutSnapshotBlock',
        'ebs:CompleteSnapshot',
        'ec2:RegisterImage',
        'ec2:RunInstances',
      ])
        expect(status.get(name), name).toBe('ok');
      // Every action the other commands call is checked, or listed as not checkable; the
      // KMS key and create-volume checks appear only when the config sets them (not here).
      const checked = new Set(checks.map((c) => c.name.split(' ')[0]));
      const unchecked = [...calledActions(['aws/permissions.ts'])].filter(
        (a) =>
          !checked.has(a) &&
          ![
            'sts:GetCallerIdentity',
            'kms:DescribeKey',
            'ec2:CreateVolume',
            'ec2:CreateTags',
            'ec2:DeleteSnapshot',
          ].includes(a),
      );
      expect(unchecked).toEqual([]);
      // No snapshot of this config yet: the two calls that need one are listed, each saying why.
      for (const action of ['ec2:CreateTags', 'ec2:DeleteSnapshot'])
        expect(checks.find((c) => c.name.startsWith(`${action} `))).toMatchObject({
          status: 'skip',
          detail: expect.stringMatching(/no snapshot of this config yet/),
        });
      expect(checks.find((c) => c.name.startsWith('ebs:StartSnapshot'))?.status).toBe('skip');
      expect(checks.find((c) => c.name === 'credentials')?.detail).toContain(
        'arn:aws:iam::123456789012:user/emulator',
      );
      // Nothing was created: every EC2 call was a dry run or a Describe.
      const state = await em.admin.state();
      expect([state.snapshots.length, state.images.length, state.instances.length]).toEqual([0, 0, 1]);
    });
  });

  it('reports a missing permission, a missing plugin and an unwritable state directory, each with its fix, and exits 1', async () => {
    await withEmulator(
      { deniedActions: ['ec2:CreateSnapshots', 'ebs:GetSnapshotBlock', 'ec2:RunInstances'] },
      async (em, dir) => {
        const { instanceId } = await em.admin.instance({
          volumes: [{ sizeGiB: 1, fill: { blocks: 2, seed: 82 } }],
        });
        const config = writeConfig(dir.path, em, `[backup]\ninstance-ids = ${instanceId}\n`, 'doc');
        const result = await cli([
          'doctor',
          `--config=${config}`,
          `--bacula-fd-conf=${fdConf(dir.path, false)}`,
        ]);
        expect(result.code).toBe(1);
        expect(result.stderr).toMatch(/5 check\(s\) failed/);
        const out = result.stdout.toString();
        expect(out).toMatch(
          new RegExp(
            `FAIL  backup +ec2:CreateSnapshots \\(snapshot ${instanceId}, with its tags\\): not allowed\\n +fix: grant ec2:CreateSnapshots to arn:aws:iam::123456789012:user/emulator`,
          ),
        );
        expect(out).toMatch(
          /FAIL {2}backup +ebs:GetSnapshotBlock \(read blocks\): not allowed\n +fix: grant ebs:GetSnapshotBlock/,
        );
        expect(out).toMatch(
          /FAIL {2}restore +ec2:RunInstances \(launch the restored instance, in us-east-1\): not allowed/,
        );
        expect(out).toMatch(
          /FAIL {2}setup +Bacula bpipe plugin: .*plugins-empty\/bpipe-fd.so is missing[^\n]*\n +fix: install the bpipe plugin/,
        );
        // writeConfig's state dir was never made.
        expect(out).toMatch(
          /FAIL {2}setup +state directory .*\/state: not a writable directory \(ENOENT\)\n +fix: mkdir -p/,
        );
        expect(out).toMatch(/ok {4}backup +ec2:DescribeInstances/);
      },
    );
  });

  it('says so when the credentials are refused, and checks no permission with them', async () => {
    await withEmulator({}, async (em, dir) => {
      const config = writeConfig(dir.path, em, '', 'doc');
      const bad = config.replace('.ini', '-bad.ini');
      writeFileSync(
        bad,
        (await import('node:fs'))
          .readFileSync(config, 'utf8')
          .replace('emulator-secret-access-key', 'wrong-secret'),
        {
          mode: 0o600,
        },
      );
      const result = await cli(['doctor', `--config=${bad}`, '--json']);
      expect(result.code).toBe(1);
      const { checks } = JSON.parse(result.stdout.toString()) as { checks: Check[] };
      const credentials = checks.find((c) => c.name === 'credentials');
      expect(credentials?.status).toBe('fail');
      expect(credentials?.detail).toMatch(/SignatureDoesNotMatch/);
      expect(checks.some((c) => c.area === 'backup')).toBe(false);
    });
  });
});
