import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, ROOT } from '../../helpers.js';

/** A private Bacula (Director with a SQLite catalog, Storage Daemon on files, File Daemon) on loopback ports. */
export const BACULA_BINARIES = [
  '/usr/sbin/bacula-dir',
  '/usr/sbin/bacula-sd',
  '/usr/sbin/bacula-fd',
  '/usr/sbin/bconsole',
];
export const MAKE_TABLES = '/usr/share/bacula-director/make_sqlite3_tables';

export function baculaAvailable(): boolean {
  return [...BACULA_BINARIES, MAKE_TABLES, '/usr/lib/bacula/bpipe-fd.so'].every((f) => existsSync(f));
}

export interface BaculaOptions {
  work: string;
  program: string;
  configFile: string;
}

/** A Director's SQLite catalog `bacula` in `dir`, made by Debian's own script. */
export function makeCatalog(dir: string): void {
  // The script creates the tables in /var/lib/bacula under a name dbconfig fills in.
  const script = readFileSync(MAKE_TABLES, 'utf8')
    .replace(/^cd .*$/m, `cd ${dir}`)
    .replace(/^db_name=.*$/m, 'db_name=bacula');
  execFileSync('sh', ['-c', script], { stdio: 'pipe' });
}

export class Bacula {
  private readonly children: ChildProcess[] = [];
  private stopping = false;
  private dirPort = 0;
  private console = '';
  readonly log: string;

  constructor(private readonly options: BaculaOptions) {
    this.log = join(options.work, 'log', 'bacula.log');
  }

  /** The Director resources from examples/bacula, with this machine's program and config paths. */
  private exampleResources(): string {
    return readFileSync(join(ROOT, 'examples', 'bacula', 'ec2-bpipe-dir.conf'), 'utf8')
      .replaceAll('/usr/local/bin/ec2-bpipe', this.options.program)
      .replaceAll('/etc/ec2-bpipe/web.ini', this.options.configFile)
      .replaceAll('/var/lib/bacula/', `${this.options.work}/dir/`);
  }

  async start(): Promise<void> {
    const { work } = this.options;
    for (const d of ['dir', 'sd', 'fd', 'run', 'log', 'storage'])
      mkdirSync(join(work, d), { recursive: true });
    const [dirPort, sdPort, fdPort] = [await freePort(), await freePort(), await freePort()];
    this.dirPort = dirPort;
    const dirConf = join(work, 'bacula-dir.conf');
    writeFileSync(
      dirConf,
      `Director {
  Name = test-dir
  DIRport = ${dirPort}
  DirAddress = 127.0.0.1
  QueryFile = "/etc/bacula/scripts/query.sql"
  WorkingDirectory = "${work}/dir"
  PidDirectory = "${work}/run"
  Maximum Concurrent Jobs = 1
  Password = "dir-secret"
  Messages = Daemon
}
Catalog {
  Name = MyCatalog
  dbname = "bacula"; dbuser = ""; dbpassword = ""
}
Client {
  Name = backup-host-fd
  Address = 127.0.0.1
  FDPort = ${fdPort}
  Catalog = MyCatalog
  Password = "fd-secret"
  AutoPrune = no
}
Storage {
  Name = File1
  Address = 127.0.0.1
  SDPort = ${sdPort}
  Password = "sd-secret"
  Device = FileDev
  Media Type = File
}
Pool {
  Name = Default
  Pool Type = Backup
}
Pool {
  Name = File
  Pool Type = Backup
  Recycle = no
  AutoPrune = no
  Volume Retention = 365 days
  Maximum Volume Bytes = 50G
  Maximum Volumes = 100
}
Messages {
  Name = Standard
  append = "${this.log}" = all, !skipped
  catalog = all
  console = all, !skipped, !saved
}
Messages {
  Name = Daemon
  append = "${work}/log/daemon.log" = all, !skipped
  console = all, !skipped, !saved
}
${this.exampleResources()}
`,
    );
    const sdConf = join(work, 'bacula-sd.conf');
    writeFileSync(
      sdConf,
      `Storage {
  Name = test-sd
  SDPort = ${sdPort}
  SDAddress = 127.0.0.1
  WorkingDirectory = "${work}/sd"
  Pid Directory = "${work}/run"
  Maximum Concurrent Jobs = 5
}
Director {
  Name = test-dir
  Password = "sd-secret"
}
Device {
  Name = FileDev
  Media Type = File
  Archive Device = ${work}/storage
  LabelMedia = yes
  Random Access = yes
  AutomaticMount = yes
  RemovableMedia = no
  AlwaysOpen = no
}
Messages {
  Name = Standard
  director = test-dir = all
}
`,
    );
    const fdConf = join(work, 'bacula-fd.conf');
    writeFileSync(
      fdConf,
      `Director {
  Name = test-dir
  Password = "fd-secret"
}
FileDaemon {
  Name = backup-host-fd
  FDport = ${fdPort}
  FDAddress = 127.0.0.1
  WorkingDirectory = ${work}/fd
  Pid Directory = ${work}/run
  Maximum Concurrent Jobs = 5
  Plugin Directory = /usr/lib/bacula
}
Messages {
  Name = Standard
  director = test-dir = all, !skipped, !restored
}
`,
    );
    this.console = join(work, 'bconsole.conf');
    writeFileSync(
      this.console,
      `Director {
  Name = test-dir
  DIRport = ${dirPort}
  address = 127.0.0.1
  Password = "dir-secret"
}
`,
    );
    makeCatalog(join(work, 'dir'));
    execFileSync('/usr/sbin/bacula-dir', ['-t', '-c', dirConf], { stdio: 'pipe' });
    for (const [binary, conf] of [
      ['/usr/sbin/bacula-sd', sdConf],
      ['/usr/sbin/bacula-fd', fdConf],
      ['/usr/sbin/bacula-dir', dirConf],
    ] as const) {
      const child = spawn(binary, ['-f', '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (c: Buffer) => (output += c.toString()));
      child.stderr.on('data', (c: Buffer) => (output += c.toString()));
      child.on('exit', (code) => {
        if (!this.stopping && code !== 0 && code !== null)
          process.stderr.write(`${binary} exited ${code}: ${output}\n`);
      });
      this.children.push(child);
    }
    await this.waitForDirector();
  }

  private async waitForDirector(): Promise<void> {
    for (let i = 0; i < 100; i++) {
      const out = await this.bconsole(['status dir']).catch(() => '');
      if (/test-dir Version/.test(out)) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error('the Bacula Director did not answer');
  }

  /** Runs bconsole commands; resolves to what it printed. */
  bconsole(commands: string[], timeoutMs = 300_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = spawn('/usr/sbin/bconsole', ['-c', this.console], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr.on('data', (c: Buffer) => (out += c.toString()));
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`bconsole timed out: ${out.slice(-2000)}`));
      }, timeoutMs);
      child.on('error', reject);
      child.on('close', () => {
        clearTimeout(timer);
        resolve(out);
      });
      child.stdin.end(`${commands.join('\n')}\nquit\n`);
    });
  }

  /** Runs one job to its end and returns its termination line from the job log. */
  async run(command: string): Promise<{ jobId: number; termination: string; output: string }> {
    const output = await this.bconsole([command, 'wait', 'messages']);
    const jobId = Number(/JobId=(\d+)/.exec(output)?.[1] ?? NaN);
    if (!Number.isInteger(jobId)) throw new Error(`no job was queued: ${output.slice(-2000)}`);
    const log = readFileSync(this.log, 'utf8');
    const summary = new RegExp(`^\\s*JobId:\\s+${jobId}\\s*$`, 'm').exec(log);
    const termination = summary ? (/Termination:\s+(.+)/.exec(log.slice(summary.index))?.[1] ?? '') : '';
    return { jobId, termination: termination.trim(), output };
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(
      this.children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.pid === undefined) return resolve();
            const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
            child.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            process.kill(child.pid, 'SIGTERM');
          }),
      ),
    );
  }
}
