// The restores to AWS here write every block (--from-snapshots=never): they test the stream's way
// into new snapshots. Restoring from the snapshots AWS still holds: from-snapshots.test.ts.

/** What restore checks before it creates anything, and only for the operation chosen. */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { backupJob, BIN, cli, withEmulator, writeConfig } from '../helpers.js';
import { block, buildStream } from '../stream-builder.js';

const VOL = 'vol-0123456789abcdef0';

type Em = Parameters<Parameters<typeof withEmulator>[1]>[0];

/** Seeds an instance as `spec` says, and backs it up as job j1: the config, the stream file and the source. */
async function backedUpInstance(
  em: Em,
  dir: { path: string },
  spec: Record<string, unknown>,
): Promise<{ config: string; file: string; source: { instanceId: string; volumeIds: string[] } }> {
  const source = await em.admin.instance(spec);
  const config = writeConfig(dir.path, em);
  const file = join(dir.path, 'j1.tar');
  const backup = await cli(['backup', `--config=${config}`, `--instance=${source.instanceId}`, '--job=j1'], {
    stdoutFile: file,
  });
  expect(backup.code, backup.stderr).toBe(0);
  return { config, file, source };
}

/** A config for the emulator and a one-block volume stream (job j1) written beside it. */
async function volumeStream(em: Em, dir: { path: string }): Promise<{ config: string; file: string }> {
  const config = writeConfig(dir.path, em);
  const file = join(dir.path, 'volume.tar');
  writeFileSync(
    file,
    await buildStream({
      job: 'j1',
      kind: 'volumes',
      volumes: [{ volumeId: VOL, blocks: new Map([[0, block(1)]]) }],
    }),
  );
  return { config, file };
}

describe('restore checks the target before creating anything', () => {
  it('--no-launch ignores launch-only settings: a subnet that no longer exists does not stop it', async () => {
    await withEmulator({}, async (em, dir) => {
      const config = writeConfig(dir.path, em);
      // The stream's instance lived in subnet-0123456789abcdef0, which this region does not have.
      const file = join(dir.path, 'instance.tar');
      writeFileSync(
        file,
        await buildStream({ job: 'j1', volumes: [{ volumeId: VOL, blocks: new Map([[0, block(1)]]) }] }),
      );
      const launching = await cli(['restore', '--from-snapshots=never', `--config=${config}`, file]);
      expect(launching.code).toBe(2);
      expect(launching.stderr).toMatch(
        /subnet subnet-0123456789abcdef0 \(stored with i-[0-9a-f]+\) does not exist in us-east-1/,
      );
      expect((await em.admin.state()).snapshots).toEqual([]);
      const restored = await cli([
        'restore',
        '--from-snapshots=never',
        `--config=${config}`,
        '--no-launch',
        file,
      ]);
      expect(restored.code, restored.stderr).toBe(0);
      expect(restored.stdout.toString()).toMatch(
        /^snapshot snap-[0-9a-f]+ source=vol-0123456789abcdef0 job=j1 region=us-east-1$/m,
      );
    });
  });

  it('refuses --create-volume in an unknown availability zone, exit 2, with nothing created', async () => {
    await withEmulator({}, async (em, dir) => {
      const { config, file } = await volumeStream(em, dir);
      const refused = await cli([
        'restore',
        '--from-snapshots=never',
        `--config=${config}`,
        '--create-volume',
        '--availability-zone=us-east-1z',
        file,
      ]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(
        /availability zone us-east-1z \(--availability-zone\) does not exist in us-east-1/,
      );
      const state = await em.admin.state();
      expect(state.snapshots).toEqual([]);
      expect(state.volumes).toEqual([]);
      const created = await cli([
        'restore',
        '--from-snapshots=never',
        `--config=${config}`,
        '--create-volume',
        '--availability-zone=us-east-1b',
        file,
      ]);
      expect(created.code, created.stderr).toBe(0);
      expect(created.stdout.toString()).toMatch(
        /^volume vol-[0-9a-f]+ source=vol-0123456789abcdef0 az=us-east-1b$/m,
      );
    });
  });
});

describe('an idempotent launch', () => {
  it('a rerun of a restore killed after RunInstances launches no second instance, and leaves no AMI', async () => {
    // Long pending times give the first run a window between RunInstances and "running".
    await withEmulator({ pendingMs: 1500 }, async (em, dir) => {
      const { config, file, source } = await backedUpInstance(em, dir, {
        volumes: [{ sizeGiB: 1, fill: { blocks: 3, seed: 5 } }],
      });
      const child = spawn(
        process.execPath,
        [BIN, 'restore', '--from-snapshots=never', `--config=${config}`, file],
        {
          stdio: 'ignore',
        },
      );
      const launched = async () =>
        (await em.admin.state()).instances.filter((i) => i.InstanceId !== source.instanceId);
      await expect.poll(async () => (await launched()).length, { timeout: 60_000, interval: 50 }).toBe(1);
      child.kill('SIGKILL');
      await new Promise((resolve) => child.on('close', resolve));
      const first = (await launched())[0]!.InstanceId;

      const rerun = await cli(['restore', '--from-snapshots=never', `--config=${config}`, file]);
      expect(rerun.code, rerun.stderr).toBe(0);
      expect(rerun.stderr).toMatch(
        new RegExp(`was launched by an earlier run as ${first}; not launching again`),
      );
      expect(rerun.stdout.toString()).toMatch(
        new RegExp(`^instance ${first} source=${source.instanceId} `, 'm'),
      );
      expect((await launched()).map((i) => i.InstanceId)).toEqual([first]);
      expect((await em.admin.state()).images.filter((i) => i.State !== 'deregistered')).toEqual([]);
    });
  });
});

describe('the instance type of a launch', () => {
  it('is checked before anything is created, and what it cannot take is dropped and said', async () => {
    await withEmulator({}, async (em, dir) => {
      const { config, file } = await backedUpInstance(em, dir, {
        instanceType: 'm5.large',
        volumes: [{ sizeGiB: 1, fill: { blocks: 2, seed: 8 } }],
      });
      const before = await em.admin.state();
      for (const [type, reason] of [
        ['zz9.huge', /instance type zz9\.huge \(--instance-type\) is not known to this ec2-bpipe/],
        ['c6a.large', /instance type c6a\.large \(--instance-type\) does not exist in us-east-1/],
        ['m6g.large', /instance type m6g\.large \(--instance-type\) runs arm64, but i-[0-9a-f]+ was x86_64/],
      ] as const) {
        const refused = await cli([
          'restore',
          '--from-snapshots=never',
          `--config=${config}`,
          `--instance-type=${type}`,
          file,
        ]);
        expect(refused.code, type).toBe(2);
        expect(refused.stderr).toMatch(reason);
        const after = await em.admin.state();
        expect(after.snapshots.length, type).toBe(before.snapshots.length);
        expect(after.instances.length, type).toBe(before.instances.length);
      }
      // t2.micro has neither ENA nor EBS optimization, and m5.metal takes no CPU options: the
      // launch goes through without them, and the log says what was dropped.
      const t2 = await cli([
        'restore',
        '--from-snapshots=never',
        `--config=${config}`,
        '--instance-type=t2.micro',
        file,
      ]);
      expect(t2.code, t2.stderr).toBe(0);
      expect(t2.stderr).toMatch(/adapted: ENA on \(t2\.micro has no ENA: registered without it\)/);
      expect(t2.stderr).toMatch(/adapted: EBS optimization on \(t2\.micro does not support it: off\)/);
      const metal = await cli([
        'restore',
        '--from-snapshots=never',
        `--config=${config}`,
        '--instance-type=m5.metal',
        '--keep-image',
        file,
      ]);
      expect(metal.code, metal.stderr).toBe(0);
      expect(metal.stderr).toMatch(
        /lost: CPU options 1 cores x 2 threads \(m5\.metal is bare metal and takes no CPU options\)/,
      );
    });
  });
});

describe('tags within the limit', () => {
  it('keeps the restore tags of an instance with 49 tags, leaves out the originals that do not fit, and says so', async () => {
    await withEmulator({}, async (em, dir) => {
      const tags = Object.fromEntries(
        Array.from({ length: 49 }, (_, i) => [`t${String(i).padStart(2, '0')}`, 'v']),
      );
      const { config, file } = await backedUpInstance(em, dir, {
        instanceType: 'm5.large',
        tags,
        volumes: [{ sizeGiB: 1, fill: { blocks: 2, seed: 9 } }],
      });
      const restored = await cli(['restore', '--from-snapshots=never', `--config=${config}`, file]);
      expect(restored.code, restored.stderr).toBe(0);
      expect(restored.stderr).toMatch(
        /EC2 takes 50 tags per resource; 2 original tag\(s\) of i-[0-9a-f]+ were left out to keep the restore tags: t47, t48/,
      );
      const instanceId = /^instance (i-[0-9a-f]+)/m.exec(restored.stdout.toString())![1];
      const instance = (await em.admin.state()).instances.find((i) => i.InstanceId === instanceId)!;
      expect(instance.Tags).toHaveLength(50);
      expect(instance.Tags.map((t: { Key: string }) => t.Key)).toEqual(
        expect.arrayContaining(['ec2-bpipe:restored', 'ec2-bpipe:source', 't00']),
      );
    });
  });
});

describe('[restore] tags within what AWS takes', () => {
  it('puts 42 on every restored snapshot beside the 8 of ec2-bpipe, and refuses 43 before any request', async () => {
    await withEmulator({}, async (em, dir) => {
      const { file } = await volumeStream(em, dir);
      const tags = (n: number) => Array.from({ length: n }, (_, i) => `T${i}=v${i}`).join(',');
      const fits = writeConfig(dir.path, em, `[restore]\ntags = ${tags(42)}\n`, 'fits');
      const restored = await cli(['restore', '--from-snapshots=never', `--config=${fits}`, file]);
      expect(restored.code, restored.stderr).toBe(0);
      const snapshot = (await em.admin.state()).snapshots.find((s) =>
        (s.Tags as { Key: string }[] | undefined)?.some((t) => t.Key === 'T41'),
      );
      expect(snapshot?.Tags).toHaveLength(50);
      await em.admin.call('POST', 'requests/reset');
      const over = writeConfig(dir.path, em, `[restore]\ntags = ${tags(43)}\n`, 'over');
      const refused = await cli(['restore', '--from-snapshots=never', `--config=${over}`, file]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(/\[restore\] tags has 43 tags; at most 42 fit/);
      expect(await em.admin.requests()).toEqual({});
    });
  });
});

describe('what a restore from snapshots loses', () => {
  it('records the platform and billing code, and warns before launching a RHEL instance that loses its billing product', async () => {
    await withEmulator({}, async (em, dir) => {
      const { config, file } = await backedUpInstance(em, dir, {
        instanceType: 'm5.large',
        attributes: { PlatformDetails: 'Red Hat Enterprise Linux', UsageOperation: 'RunInstances:0010' },
        volumes: [{ sizeGiB: 1, fill: { blocks: 2, seed: 11 } }],
      });
      const restored = await cli(['restore', '--from-snapshots=never', `--config=${config}`, file]);
      expect(restored.code, restored.stderr).toBe(0);
      expect(restored.stderr).toMatch(
        /the source ran Red Hat Enterprise Linux \(billing code RunInstances:0010\), and an instance launched from snapshots loses that billing product and its license\..*Replace root volume/,
      );
    });
  });
});

describe('the UEFI variable store', () => {
  it('is backed up with a UEFI instance and given back to RegisterImage, so Secure Boot keys survive', async () => {
    await withEmulator({}, async (em, dir) => {
      const uefi = Buffer.from('secure boot variables: PK KEK db dbx').toString('base64');
      const { config, file } = await backedUpInstance(em, dir, {
        instanceType: 'm5.large',
        uefiData: uefi,
        volumes: [{ sizeGiB: 1, fill: { blocks: 2, seed: 12 } }],
      });
      const restored = await cli([
        'restore',
        '--from-snapshots=never',
        `--config=${config}`,
        '--keep-image',
        file,
      ]);
      expect(restored.code, restored.stderr).toBe(0);
      const imageId = /^image (ami-[0-9a-f]+)/m.exec(restored.stdout.toString())?.[1];
      const image = (await em.admin.state()).images.find((i) => i.ImageId === imageId);
      expect(image?.UefiData).toBe(uefi);
    });
  });

  it('longer than RegisterImage takes (64,000 characters) is refused before the first block', async () => {
    await withEmulator({}, async (em, dir) => {
      const { config, file } = await backedUpInstance(em, dir, {
        instanceType: 'm5.large',
        uefiData: 'A'.repeat(64_004),
        volumes: [{ sizeGiB: 1, fill: { blocks: 2, seed: 13 } }],
      });
      await em.admin.call('POST', 'requests/reset');
      const restored = await cli(['restore', '--from-snapshots=never', `--config=${config}`, file]);
      expect(restored.code).toBe(2);
      expect(restored.stderr).toMatch(
        /the UEFI variable store of i-\w+ is 64004 characters; RegisterImage takes 64000\. Restore its snapshots with --no-launch/,
      );
      expect((await em.admin.requests())['ebs:StartSnapshot']).toBeUndefined();
    });
  });
});

describe('a Region that encrypts EBS by default', () => {
  it('takes a restored chain of an unencrypted instance: every snapshot and volume comes out encrypted', async () => {
    await withEmulator({}, async (em, dir) => {
      const { instanceId, volumeIds } = await em.admin.instance({
        instanceType: 'm5.large',
        volumes: [{ sizeGiB: 1, fill: { blocks: 3, seed: 14 } }],
      });
      const config = writeConfig(dir.path, em, `[backup]\ninstance-ids = ${instanceId}\n`);
      expect((await backupJob(config, dir.path, 'e1', 'Full')).code).toBe(0);
      await em.admin.call('POST', `volumes/${volumeIds[0]}/mutate`, { write: { blocks: 1, seed: 15 } });
      expect((await backupJob(config, dir.path, 'e2', 'Incremental', 'e1')).code).toBe(0);
      await em.admin.call('POST', 'encryption-by-default', { region: 'us-east-1' });
      const before = new Set((await em.admin.state()).snapshots.map((s) => s.SnapshotId));
      const restored = await cli([
        'restore',
        '--from-snapshots=never',
        `--config=${config}`,
        join(dir.path, 'e1.tar'),
        join(dir.path, 'e2.tar'),
      ]);
      expect(restored.code, restored.stderr).toBe(0);
      const after = await em.admin.state();
      const made = after.snapshots.filter((s) => !before.has(s.SnapshotId));
      expect(made).toHaveLength(2);
      expect(made.every((s) => s.Encrypted === true && s.State === 'completed')).toBe(true);
      const launched = after.instances.find((i) => i.InstanceId !== instanceId);
      const volumes = after.volumes.filter((v) =>
        (v.Attachments as { InstanceId: string }[] | undefined)?.some(
          (a) => a.InstanceId === launched?.InstanceId,
        ),
      );
      expect(volumes.length).toBeGreaterThan(0);
      expect(volumes.every((v) => v.Encrypted === true)).toBe(true);
      expect((await em.admin.volumeDigest(String(volumes[0]?.VolumeId))).digest).toBe(
        (await em.admin.volumeDigest(String(volumeIds[0]))).digest,
      );
    });
  });
});

describe('the KMS key of a restore', () => {
  it('is checked with KMS before anything is created: unknown or disabled keys exit 2', async () => {
    await withEmulator({}, async (em, dir) => {
      const { config, file } = await volumeStream(em, dir);
      const unknown = 'arn:aws:kms:us-east-1:123456789012:key/00000000-1111-2222-3333-444444444444';
      const disabled = 'arn:aws:kms:us-east-1:123456789012:key/55555555-1111-2222-3333-444444444444';
      await em.admin.call('POST', 'kms-keys', { keyArn: disabled, state: 'Disabled' });
      for (const [key, reason] of [
        [unknown, /KMS key .* does not exist in us-east-1; check --kms-key-id/],
        [disabled, /KMS key .* is Disabled, not Enabled/],
      ] as const) {
        const refused = await cli([
          'restore',
          '--from-snapshots=never',
          `--config=${config}`,
          `--kms-key-id=${key}`,
          file,
        ]);
        expect(refused.code).toBe(2);
        expect(refused.stderr).toMatch(reason);
        expect((await em.admin.state()).snapshots).toEqual([]);
      }
      const enabled = 'arn:aws:kms:us-east-1:123456789012:key/77777777-1111-2222-3333-444444444444';
      await em.admin.call('POST', 'kms-keys', { keyArn: enabled });
      const ok = await cli([
        'restore',
        '--from-snapshots=never',
        `--config=${config}`,
        `--kms-key-id=${enabled}`,
        file,
      ]);
      expect(ok.code, ok.stderr).toBe(0);
      expect((await em.admin.state()).snapshots[0]).toMatchObject({ Encrypted: true, KmsKeyId: enabled });
    });
  });
});
