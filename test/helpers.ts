import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Admin, type AdminRecord } from '../emulator/client.js';
import { startEmulator, type Emulator, type EmulatorTls } from '../emulator/server.js';
import type { EmulatorOptions } from '../emulator/state.js';

export const ROOT = resolve(import.meta.dirname, '..');
export const BIN = join(ROOT, 'bin', 'ec2-bpipe');
export const BLOCK = 512 * 1024;

export function tempDir(prefix = 'ec2-bpipe-test-'): { path: string; cleanup(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

export async function emulator(
  options: Partial<EmulatorOptions> = {},
  tls?: EmulatorTls,
): Promise<Emulator & { admin: Admin }> {
  // EMULATOR_SEED replays the faults of a failed run; the seed is in every emulator's options.
  const seed = Number(process.env.EMULATOR_SEED ?? 1);
  const em = await startEmulator({ pendingMs: 50, seed, ...options }, 0, tls);
  return Object.assign(em, { admin: new Admin(em.url, tls?.caPem) });
}

export { Admin, type AdminRecord } from '../emulator/client.js';

export const credentials = {
  accessKeyId: 'AKIAEMULATORTESTKEY1',
  secretAccessKey: 'emulator-secret-access-key',
};

export function sdkConfig(em: { url: string }, region = 'us-east-1') {
  return { region, endpoint: em.url, credentials };
}

/**
 * The emulator's URL for every service of the Regions besides the home one (us-east-1): a plain
 * endpoint-url is the home Region's only (src/aws/endpoints.ts).
 */
export function otherRegionEndpoints(
  em: { url: string },
  regions: string[] = ['eu-west-1', 'eu-central-1'],
): string {
  const others = regions.map((r) => `${r}=${em.url}`).join(', ');
  return ['ec2', 'ebs', 'kms', 'sts'].map((service) => `${service}-endpoint-url = ${others}\n`).join('');
}

/** Writes an INI config (mode 0600) pointing at the emulator; `extra` is appended as-is. */
export function writeConfig(
  dir: string,
  em: { url: string },
  extra = '',
  name = 'test',
  regions?: string[],
): string {
  const file = join(dir, `${name}.ini`);
  writeFileSync(
    file,
    `[aws]\nregion = us-east-1\nendpoint-url = ${em.url}\n${otherRegionEndpoints(em, regions)}access-key-id = ${credentials.accessKeyId}\nsecret-access-key = ${credentials.secretAccessKey}\n${extra}` +
      (extra.includes('[bacula]') ? '' : `\n[bacula]\nstate-dir = ${join(dir, 'state')}\n`),
  );
  chmodSync(file, 0o600);
  return file;
}

export interface CliResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/**
 * The environment without what would send a test's requests elsewhere: the machine's proxy
 * variables (a CI runner's proxy would carry the emulator's 127.0.0.1), a CA bundle, and the
 * SDK's endpoint variables. A test that means them passes them in `env`.
 */
function hermetic(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(env).filter(
      ([key]) => !/^(https?_proxy|no_proxy|all_proxy|aws_ca_bundle|aws_endpoint_url(_\w+)?)$/i.test(key),
    ),
  );
}

/** Runs the real command, as Bacula or a user would. */
export function cli(
  args: string[],
  options: {
    stdin?: Buffer | string;
    stdoutFile?: string;
    env?: Record<string, string | undefined>;
    /** Another program to run with `args` (the binary's own command line by default). */
    command?: string;
  } = {},
): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const [file, argv] = options.command ? [options.command, args] : [process.execPath, [BIN, ...args]];
    const child = spawn(file, argv, {
      env: { ...hermetic(process.env), ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let err = '';
    let sink: Promise<void> | undefined;
    if (options.stdoutFile) {
      sink = open(options.stdoutFile, 'w').then(async (fh) => {
        for await (const chunk of child.stdout) await fh.write(chunk as Buffer);
        await fh.close();
      });
    } else {
      child.stdout.on('data', (c: Buffer) => out.push(c));
    }
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      void Promise.resolve(sink).then(() =>
        resolvePromise({ code: code ?? -1, stdout: Buffer.concat(out), stderr: err }),
      );
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.stdin ?? '');
  });
}

/** One backup job of the config's unit, as Bacula's reader runs it, into `<dir>/<job>.tar`. */
export function backupJob(
  config: string,
  dir: string,
  job: string,
  level = 'Full',
  prevJob?: string,
): Promise<CliResult> {
  return cli(
    [
      'backup',
      `--config=${config}`,
      `--job=${job}`,
      `--level=${level}`,
      ...(prevJob !== undefined ? [`--prev-job=${prevJob}`] : []),
    ],
    { stdoutFile: join(dir, `${job}.tar`) },
  );
}

/**
 * The admin API's content digest, computed from a raw image file. With `blocks` (the indices the
 * stream's sparse map names), only those blocks are read: the holes of a sparse image are not.
 */
export async function imageDigest(
  path: string,
  blocks?: Iterable<number>,
): Promise<{ digest: string; blocks: number }> {
  const fh = await open(path, 'r');
  const hash = createHash('sha256');
  const zero = Buffer.alloc(BLOCK);
  const index = Buffer.alloc(8);
  let count = 0;
  const add = (at: number, block: Buffer): void => {
    if (block.equals(zero)) return;
    index.writeBigUInt64BE(BigInt(at));
    hash.update(index).update(createHash('sha256').update(block).digest());
    count++;
  };
  try {
    if (blocks !== undefined) {
      const buffer = Buffer.alloc(BLOCK);
      for (const at of blocks) {
        const { bytesRead } = await fh.read(buffer, 0, BLOCK, at * BLOCK);
        buffer.fill(0, bytesRead);
        add(at, buffer);
      }
    } else {
      const CHUNK = 32 * BLOCK;
      const buffer = Buffer.alloc(CHUNK);
      for (let base = 0; ; base += CHUNK) {
        const { bytesRead } = await fh.read(buffer, 0, CHUNK, base);
        if (bytesRead === 0) break;
        buffer.fill(0, bytesRead);
        for (let off = 0; off < bytesRead; off += BLOCK)
          add((base + off) / BLOCK, buffer.subarray(off, off + BLOCK));
      }
    }
  } finally {
    await fh.close();
  }
  return { digest: hash.digest('hex'), blocks: count };
}

/**
 * The digest of a restored image, over the blocks of the snapshot it came from, and only those:
 * reading the holes of a fresh multi-GiB sparse file costs seconds (the kernel fills a page cache
 * page per hole page). The image's allocated size proves it holds no block beside them: a stray
 * block is 512 KiB, the slack (extent metadata) far less.
 */
export async function restoredImageDigest(
  path: string,
  admin: Admin,
  snapshotId: string,
): Promise<{ digest: string; blocks: number }> {
  const { blocks } = await admin.call<{ blocks: number[] }>('GET', `snapshots/${snapshotId}/blocks`);
  return listedImageDigest(path, blocks, `of ${snapshotId}`);
}

/**
 * imageDigest over `blocks` (ascending, each once), once the image's allocated size proves it holds
 * no other block: `source` says whose blocks they are, for the message when it does.
 */
export async function listedImageDigest(
  path: string,
  blocks: readonly number[],
  source: string,
): Promise<{ digest: string; blocks: number }> {
  const allocated = statSync(path).blocks * 512;
  if (allocated > blocks.length * BLOCK + ALLOCATION_SLACK) {
    throw new Error(
      `${path}: ${allocated} bytes allocated for ${blocks.length} blocks ${source}: it holds more`,
    );
  }
  return imageDigest(path, blocks);
}

/** What a file system may allocate beside the data of a sparse file (ext4 extent blocks). */
const ALLOCATION_SLACK = 64 * 1024;

/** A loopback port nobody listens on now (for a daemon or a program started by the test). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Runs a test body against its own emulator and temporary directory, and cleans both up. */
export async function withEmulator(
  options: Partial<EmulatorOptions>,
  body: (em: Emulator & { admin: Admin }, dir: { path: string; cleanup(): void }) => Promise<void>,
  tls?: EmulatorTls,
): Promise<void> {
  const em = await emulator(options, tls);
  const dir = tempDir();
  try {
    await body(em, dir);
  } catch (err) {
    // The faults of this run replay with the same seed.
    if (err instanceof Error)
      err.message += ` (emulator seed ${em.options.seed}: EMULATOR_SEED=${em.options.seed} replays it)`;
    throw err;
  } finally {
    await em.close();
    dir.cleanup();
  }
}

/**
 * A 1 GiB volume of `blocks` written blocks in `em`, and a backup of it to `<job>.tar` in
 * `dirPath`, with `configBody` in its config (named after the job) and `env` on the backup.
 */
export async function backedUp(
  em: Emulator & { admin: Admin },
  dirPath: string,
  spec: { blocks: number; seed: number; job: string; configBody?: string; env?: Record<string, string> },
): Promise<{ volumeId: string; config: string; file: string; backup: CliResult }> {
  const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: spec.blocks, seed: spec.seed } });
  const config = writeConfig(dirPath, em, spec.configBody ?? '', spec.job);
  const file = join(dirPath, `${spec.job}.tar`);
  const backup = await cli(['backup', `--config=${config}`, `--volume=${volumeId}`, `--job=${spec.job}`], {
    stdoutFile: file,
    ...(spec.env && { env: spec.env }),
  });
  if (backup.code !== 0) throw new Error(`the backup of ${volumeId} exited ${backup.code}: ${backup.stderr}`);
  return { volumeId, config, file, backup };
}

/** A tag's value on a resource the admin API's state lists. */
export function tagOf(resource: AdminRecord, key: string): string | undefined {
  return (resource.Tags as { Key: string; Value: string }[] | undefined)?.find((t) => t.Key === key)?.Value;
}
