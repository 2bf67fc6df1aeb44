// The restores to AWS here write every block (--from-snapshots=never): they test the stream's way
// into new snapshots. Restoring from the snapshots AWS still holds: from-snapshots.test.ts.

/**
 * Per-service endpoints ([aws] ec2-endpoint-url and its kin): each service's calls go to its own
 * URL, each Region's to its own, and a Region the config names no endpoint for is refused.
 * The emulator serves one service set per extra port and answers 404 to the others, as a VPC
 * endpoint serves its one service.
 */
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { backupJob, cli, credentials, withEmulator } from '../helpers.js';

type Em = Parameters<Parameters<typeof withEmulator>[1]>[0];

/** An [aws] section without endpoint-url: `endpoints` are its endpoint keys. */
function configWith(dir: string, endpoints: string, extra: string, name: string): string {
  const file = join(dir, `${name}.ini`);
  writeFileSync(
    file,
    `[aws]\nregion = us-east-1\naccess-key-id = ${credentials.accessKeyId}\n` +
      `secret-access-key = ${credentials.secretAccessKey}\n${endpoints}\n${extra}\n` +
      `[bacula]\nstate-dir = ${join(dir, 'state')}\n`,
  );
  chmodSync(file, 0o600);
  return file;
}

/** Two endpoints like two VPC endpoints: EC2, STS and KMS on one port, EBS on another. */
async function twoEndpoints(em: Em): Promise<{ control: string; data: string }> {
  return { control: await em.servePort(['ec2', 'sts', 'kms']), data: await em.servePort(['ebs']) };
}

describe('per-service endpoints', () => {
  it('send EC2, STS and KMS to one endpoint and EBS to another, in both Regions: backup, DR copy and restore succeed', async () => {
    await withEmulator({ pendingMs: 0 }, async (em, dir) => {
      const { control, data } = await twoEndpoints(em);
      const { instanceId, volumeIds } = await em.admin.instance({
        instanceType: 'm5.large',
        volumes: [{ sizeGiB: 1, fill: { blocks: 4, seed: 31 } }],
      });
      const config = configWith(
        dir.path,
        `ec2-endpoint-url = ${control}, eu-west-1=${control}\nebs-endpoint-url = ${data}, eu-west-1=${data}\n` +
          `sts-endpoint-url = ${control}\nkms-endpoint-url = ${control}, eu-west-1=${control}\n`,
        `[backup]\ninstance-ids = ${instanceId}\ncopy-to-region = eu-west-1\n`,
        'split',
      );
      const backup = await backupJob(config, dir.path, 's1', 'Full');
      expect(backup.code, backup.stderr).toBe(0);
      expect(backup.stderr).toMatch(/DR copy of snap-\w+ \(vol-\w+\) started in eu-west-1/);
      const copies = (await em.admin.state()).snapshots.filter((s) => s.Region === 'eu-west-1');
      expect(copies.map((c) => c.State)).toEqual(['completed']);

      const restored = await cli([
        'restore',
        '--from-snapshots=never',
        `--config=${config}`,
        join(dir.path, 's1.tar'),
      ]);
      expect(restored.code, restored.stderr).toBe(0);
      const inWest = await cli([
        'restore',
        '--from-snapshots=never',
        `--config=${config}`,
        '--region=eu-west-1',
        '--no-launch',
        join(dir.path, 's1.tar'),
      ]);
      expect(inWest.code, inWest.stderr).toBe(0);
      const made = (await em.admin.state()).snapshots.filter(
        (s) =>
          s.Region === 'eu-west-1' && s.VolumeId === 'vol-ffffffff' && s.SnapshotId !== copies[0]?.SnapshotId,
      );
      expect(made).toHaveLength(1);
      expect((await em.admin.snapshotDigest(String(made[0]?.SnapshotId))).digest).toBe(
        (await em.admin.volumeDigest(String(volumeIds[0]))).digest,
      );
    });
  });

  it('take AWS_ENDPOINT_URL_EBS when no key names the EBS endpoint', async () => {
    await withEmulator({}, async (em, dir) => {
      const { control, data } = await twoEndpoints(em);
      const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 2, seed: 32 } });
      const config = configWith(
        dir.path,
        `ec2-endpoint-url = ${control}\nsts-endpoint-url = ${control}\n`,
        '',
        'env',
      );
      const file = join(dir.path, 'e1.tar');
      const backup = await cli(['backup', `--config=${config}`, `--volume=${volumeId}`, '--job=e1'], {
        stdoutFile: file,
        env: { AWS_ENDPOINT_URL_EBS: data },
      });
      expect(backup.code, backup.stderr).toBe(0);
      expect((await cli(['verify', file])).code).toBe(0);
    });
  });

  it('with only endpoint-url, refuse a restore into another Region (exit 2, nothing sent) and name the key to set', async () => {
    await withEmulator({}, async (em, dir) => {
      const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 2, seed: 33 } });
      const config = configWith(dir.path, `endpoint-url = ${em.url}\n`, '', 'one');
      const file = join(dir.path, 'o1.tar');
      expect(
        (
          await cli(['backup', `--config=${config}`, `--volume=${volumeId}`, '--job=o1'], {
            stdoutFile: file,
          })
        ).code,
      ).toBe(0);
      await em.admin.call('POST', 'requests/reset');
      const refused = await cli([
        'restore',
        '--from-snapshots=never',
        `--config=${config}`,
        '--region=eu-west-1',
        file,
      ]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain(
        `[aws] endpoint-url (${em.url}) is the EC2 endpoint of us-east-1; a restore in eu-west-1 would send ` +
          "eu-west-1's calls to it. Add eu-west-1=<eu-west-1's EC2 endpoint URL> to [aws] ec2-endpoint-url",
      );
      expect(await em.admin.requests()).toEqual({});
    });
  });

  it('with only endpoint-url, refuse a backup whose DR copies would go to another Region, before any snapshot', async () => {
    await withEmulator({}, async (em, dir) => {
      const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 1, seed: 34 } });
      const config = configWith(
        dir.path,
        `endpoint-url = ${em.url}\n`,
        '[backup]\ncopy-to-region = eu-west-1\n',
        'dr',
      );
      const refused = await cli(['backup', `--config=${config}`, `--volume=${volumeId}`, '--job=d1'], {
        stdoutFile: join(dir.path, 'd1.tar'),
      });
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(/a DR copy \(\[backup\] copy-to-region\) in eu-west-1 would send/);
      expect(await em.admin.requests()).toEqual({});
    });
  });

  it('are refused when a key holds two URLs without a Region, or a Region name that is none', async () => {
    await withEmulator({}, async (em, dir) => {
      for (const [value, reason] of [
        [`${em.url}, ${em.url}`, /two URLs without a Region/],
        [`eu-west=${em.url}`, /"eu-west" is not a Region name/],
      ] as const) {
        const config = configWith(dir.path, `ec2-endpoint-url = ${value}\n`, '', 'bad');
        const result = await cli(['points', `--config=${config}`]);
        expect(result.code).toBe(2);
        expect(result.stderr).toMatch(reason);
      }
    });
  });
});
