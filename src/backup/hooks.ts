import { spawn, spawnSync } from 'node:child_process';
import type { Logger } from 'pino';
import { RuntimeFailure } from '../errors.js';
import { onInterrupt } from '../lifecycle.js';

/** What a hook command is told, in its environment. */
export interface HookContext {
  job: string;
  /** The instance of the unit, or '' for volumes not attached to one. */
  instanceId: string;
  volumeIds: string[];
}

export interface Hooks {
  pre?: string;
  post?: string;
  /** Seconds a hook may run before it is stopped and counted as failed. */
  timeoutS: number;
}

function hookEnvironment(context: HookContext): NodeJS.ProcessEnv {
  return {
    ...process.env,
    EC2_BPIPE_JOB: context.job,
    EC2_BPIPE_INSTANCE_ID: context.instanceId,
    EC2_BPIPE_VOLUME_IDS: context.volumeIds.join(','),
  };
}

/** After SIGTERM, how long a hook has to exit before SIGKILL. */
const KILL_GRACE_MS = 5_000;

/**
 * Runs one hook with /bin/sh, its output line by line in the log. Fails, naming the hook, when it
 * exits non-zero, is killed, or outlives `timeoutS`.
 */
export function runHook(
  name: 'pre-snapshot-command' | 'post-snapshot-command',
  command: string,
  context: HookContext,
  timeoutS: number,
  log: Logger,
  /** Told the hook's process group while it runs, and undefined once it ended. */
  track: (group: number | undefined) => void = () => undefined,
): Promise<void> {
  return new Promise((resolve, reject) => {
    // Its own process group, so that stopping it stops what it started too (a `sleep` under sh
    // would otherwise keep its output open, and the backup waiting).
    const child = spawn('/bin/sh', ['-c', command], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: hookEnvironment(context),
    });
    track(child.pid);
    let timedOut = false;
    let kill: NodeJS.Timeout | undefined;
    const signalGroup = (signal: NodeJS.Signals): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, signal);
      } catch {
        // The group is gone already.
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      signalGroup('SIGTERM');
      kill = setTimeout(() => signalGroup('SIGKILL'), KILL_GRACE_MS);
    }, timeoutS * 1000);
    const relay = (stream: NodeJS.ReadableStream, level: 'info' | 'warn'): void => {
      let pending = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        pending += chunk;
        const lines = pending.split('\n');
        pending = lines.pop() ?? '';
        for (const line of lines) if (line.trim() !== '') log[level](`${name}: ${line}`);
      });
      stream.on('end', () => {
        if (pending.trim() !== '') log[level](`${name}: ${pending}`);
      });
    };
    relay(child.stdout, 'info');
    relay(child.stderr, 'warn');
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new RuntimeFailure(`[backup] ${name} could not start (${err.message})`));
    });
    child.on('close', (code, signal) => {
      track(undefined);
      clearTimeout(timer);
      if (kill !== undefined) clearTimeout(kill);
      if (code === 0) {
        resolve();
        return;
      }
      const how = timedOut
        ? `did not finish within hook-timeout = ${timeoutS} s and was stopped`
        : signal !== null
          ? `was killed by ${signal}`
          : `exited ${code ?? '?'}`;
      reject(new RuntimeFailure(`[backup] ${name} ${how}: ${command}`));
    });
  });
}

/**
 * Takes the snapshots between the hooks. The pre command runs first; when it fails, no snapshot
 * is taken and the backup fails. The post command runs whenever the pre command ran, even when
 * the pre command or the snapshots failed: a pre command that froze one file system of two and
 * then failed must still be undone. A failing post command fails a backup whose snapshots were
 * taken too: the file system may still be frozen, and the operator must hear of it.
 */
export async function betweenHooks<T>(
  hooks: Hooks,
  context: HookContext,
  log: Logger,
  take: () => Promise<T>,
): Promise<T> {
  let running: number | undefined;
  const track = (group: number | undefined): void => {
    running = group;
  };
  // A signal (a cancelled Bacula job) ends the process at once: the post command then runs there
  // and then, synchronously, so that what the pre command froze is thawed all the same.
  // A hook still running is stopped with its process group, whether or not a post command follows.
  const postCommand = hooks.post;
  const forget =
    postCommand === undefined && hooks.pre === undefined
      ? () => undefined
      : onInterrupt(() => {
          if (running !== undefined) {
            try {
              process.kill(-running, 'SIGKILL');
            } catch {
              // It ended meanwhile.
            }
          }
          if (postCommand === undefined)
            return running === undefined ? undefined : 'the running hook was stopped';
          const run = spawnSync('/bin/sh', ['-c', postCommand], {
            env: hookEnvironment(context),
            stdio: 'ignore',
            timeout: hooks.timeoutS * 1000,
          });
          return `post-snapshot-command run after the interruption (${run.status === 0 ? 'exit 0' : `failed: ${run.error?.message ?? `exit ${String(run.status)}`}`})`;
        });
  const post = async (): Promise<void> => {
    forget();
    if (postCommand === undefined) return;
    log.info(`running post-snapshot-command for job ${context.job}`);
    await runHook('post-snapshot-command', postCommand, context, hooks.timeoutS, log, track);
  };
  let taken: T;
  try {
    if (hooks.pre !== undefined) {
      log.info(`running pre-snapshot-command for job ${context.job}`);
      await runHook('pre-snapshot-command', hooks.pre, context, hooks.timeoutS, log, track);
    }
    taken = await take();
  } catch (err) {
    // The first failure is the one to report; the post command's own failure is logged.
    await post().catch((postErr: unknown) =>
      log.error(postErr instanceof Error ? postErr.message : String(postErr)),
    );
    throw err;
  }
  await post();
  return taken;
}
