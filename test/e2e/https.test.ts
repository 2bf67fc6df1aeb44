/**
 * AWS speaks HTTPS only: the emulator serves HTTPS with a certificate made at start-up, and the
 * tool trusts it through [aws] ca-bundle. A backup with a DR copy and a restore to AWS run over
 * it; a host behind a proxy sends every connection through it; a wrong bundle fails in one line.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countingProxy } from '../connect-proxy.js';
import { backupJob, cli, tempDir, withEmulator, writeConfig } from '../helpers.js';
import { type TestCertificates, testCertificates } from '../tls.js';

const certs = tempDir('ec2-bpipe-tls-');
const other = tempDir('ec2-bpipe-tls-other-');
let tls: TestCertificates;
/** Another CA, that did not sign the emulator's certificate. */
let wrongCa: string;

beforeAll(() => {
  tls = testCertificates(certs.path);
  wrongCa = testCertificates(other.path, 'another CA').caFile;
});
afterAll(() => {
  certs.cleanup();
  other.cleanup();
});

const served = () => ({ key: tls.key, cert: tls.cert, caPem: readFileSync(tls.caFile, 'utf8') });

describe('over HTTPS', () => {
  it('backs up with a DR copy and restores to AWS, trusting the emulator through [aws] ca-bundle', async () => {
    await withEmulator(
      { pendingMs: 0 },
      async (em, dir) => {
        expect(em.url).toMatch(/^https:/);
        const { instanceId, volumeIds } = await em.admin.instance({
          instanceType: 'm5.large',
          volumes: [{ sizeGiB: 1, fill: { blocks: 4, seed: 41 } }],
        });
        const config = writeConfig(
          dir.path,
          em,
          `ca-bundle = ${tls.caFile}\n[backup]\ninstance-ids = ${instanceId}\ncopy-to-region = eu-west-1\n`,
          'tls',
        );
        const backup = await backupJob(config, dir.path, 't1', 'Full');
        expect(backup.code, backup.stderr).toBe(0);
        expect(backup.stderr).toMatch(/DR copy of snap-\w+ \(vol-\w+\) started in eu-west-1/);
        expect(
          (await em.admin.state()).snapshots.filter((s) => s.Region === 'eu-west-1').map((s) => s.State),
        ).toEqual(['completed']);
        const restored = await cli(['restore', `--config=${config}`, join(dir.path, 't1.tar')]);
        expect(restored.code, restored.stderr).toBe(0);
        const launched = /^instance (i-[0-9a-f]+)/m.exec(restored.stdout.toString())?.[1];
        const state = await em.admin.state();
        const volume = state.volumes.find((v) =>
          (v.Attachments as { InstanceId: string }[] | undefined)?.some((a) => a.InstanceId === launched),
        );
        expect((await em.admin.volumeDigest(String(volume?.VolumeId))).digest).toBe(
          (await em.admin.volumeDigest(String(volumeIds[0]))).digest,
        );
        const doctor = await cli(['doctor', `--config=${config}`]);
        expect(doctor.stdout.toString()).toContain(`CA bundle ${tls.caFile} ([aws] ca-bundle)`);
      },
      served(),
    );
  });

  it('fails in one line that says to set ca-bundle, when the bundle does not hold the CA', async () => {
    await withEmulator(
      {},
      async (em, dir) => {
        const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 1, seed: 42 } });
        const config = writeConfig(dir.path, em, `ca-bundle = ${wrongCa}\n`, 'wrong');
        const result = await cli(['backup', `--config=${config}`, `--volume=${volumeId}`, '--job=w1'], {
          stdoutFile: join(dir.path, 'w1.tar'),
        });
        expect(result.code).toBe(1);
        const lines = result.stderr.trim().split('\n');
        expect(lines, result.stderr).toHaveLength(1);
        expect(lines[0]).toMatch(
          /^error: EC2 \w+ in us-east-1 failed: .* the endpoint's certificate is not trusted \((UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)\): .* set \[aws\] ca-bundle/,
        );
        expect(await em.admin.requests()).toEqual({});
      },
      served(),
    );
  });

  it('refuses a ca-bundle that is no PEM file, before any request (exit 2)', async () => {
    await withEmulator(
      {},
      async (em, dir) => {
        const config = writeConfig(dir.path, em, `ca-bundle = ${notPem(dir.path)}\n`, 'nopem');
        const result = await cli(['points', `--config=${config}`]);
        expect(result.code).toBe(2);
        expect(result.stderr).toMatch(/\[aws\] ca-bundle .*nopem\.ini holds no PEM certificate/);
      },
      served(),
    );
  });
});

/** The config file itself: a file that exists and holds no certificate. */
function notPem(dir: string): string {
  return join(dir, 'nopem.ini');
}

describe('through a proxy', () => {
  it('sends every connection of a backup through HTTPS_PROXY, and none when NO_PROXY names the host', async () => {
    const proxy = await countingProxy();
    try {
      await withEmulator(
        {},
        async (em, dir) => {
          const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 3, seed: 43 } });
          const config = writeConfig(dir.path, em, `ca-bundle = ${tls.caFile}\n`, 'proxied');
          const backup = await cli(['backup', `--config=${config}`, `--volume=${volumeId}`, '--job=p1'], {
            stdoutFile: join(dir.path, 'p1.tar'),
            env: { HTTPS_PROXY: proxy.url, NO_PROXY: '' },
          });
          expect(backup.code, backup.stderr).toBe(0);
          expect(proxy.tunnels.length).toBeGreaterThan(0);
          expect(new Set(proxy.tunnels.map((t) => t.target))).toEqual(new Set([new URL(em.url).host]));
          // The emulator saw no connection that did not come out of a tunnel.
          const { ports } = await em.admin.call<{ ports: number[] }>('GET', 'peers');
          const tunnelled = new Set(proxy.tunnels.map((t) => t.upstreamPort));
          expect(ports.length).toBeGreaterThan(0);
          expect(ports.filter((p) => !tunnelled.has(p))).toEqual([]);
          expect((await cli(['verify', join(dir.path, 'p1.tar')])).code).toBe(0);

          const before = proxy.tunnels.length;
          const direct = await cli(['backup', `--config=${config}`, `--volume=${volumeId}`, '--job=p2'], {
            stdoutFile: join(dir.path, 'p2.tar'),
            env: { HTTPS_PROXY: proxy.url, NO_PROXY: '127.0.0.1' },
          });
          expect(direct.code, direct.stderr).toBe(0);
          expect(proxy.tunnels.length).toBe(before);
        },
        served(),
      );
    } finally {
      await proxy.close();
    }
  });

  it('takes [aws] proxy over the environment, and doctor names it without its password', async () => {
    const proxy = await countingProxy();
    try {
      await withEmulator(
        {},
        async (em, dir) => {
          const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 2, seed: 44 } });
          const withPassword = proxy.url.replace('http://', 'http://ops:s3cret@');
          const config = writeConfig(
            dir.path,
            em,
            `ca-bundle = ${tls.caFile}\nproxy = ${withPassword}\n`,
            'key',
          );
          const backup = await cli(['backup', `--config=${config}`, `--volume=${volumeId}`, '--job=k1'], {
            stdoutFile: join(dir.path, 'k1.tar'),
            env: { HTTPS_PROXY: '', NO_PROXY: '' },
          });
          expect(backup.code, backup.stderr).toBe(0);
          expect(proxy.tunnels.length).toBeGreaterThan(0);
          const doctor = await cli(['doctor', `--config=${config}`]);
          expect(doctor.stdout.toString()).toContain(
            `proxy ${proxy.url.replace('http://', 'http://***@')} ([aws] proxy)`,
          );
          expect(doctor.stdout.toString() + doctor.stderr).not.toContain('s3cret');
        },
        served(),
      );
    } finally {
      await proxy.close();
    }
  });
});
