import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, cli, credentials, emulator, tempDir, writeConfig } from '../helpers.js';

type Em = Awaited<ReturnType<typeof emulator>>;

describe('command line', () => {
  const dir = tempDir();
  let em: Em;

  beforeAll(async () => {
    em = await emulator({
      keys: {
        ...{ [credentials.accessKeyId]: credentials.secretAccessKey },
        AKIAIOSFODNN7EXAMPLE: 'wJalrXUtnFEMI-very-secret-KEY',
      },
    });
  });
  afterAll(async () => {
    await em.close();
    dir.cleanup();
  });

  it.each([
    [
      'backup',
      [
        '--config',
        '--instance',
        '--volume',
        '--workers',
        '--job',
        '--level',
        '--prev-job',
        '--finalizer',
        '--log-format',
      ],
    ],
    [
      'restore',
      [
        '--to-dir',
        '--where',
        '--replace',
        '--workers',
        '--instance-type',
        '--subnet-id',
        '--security-group-ids',
        '--key-name',
        '--placement-group',
        '--partition-number',
        '--kms-key-id',
        '--keep-image',
        '--no-launch',
      ],
    ],
    ['verify', ['--config', '--log-format']],
    ['list', ['--job', '--level', '--prev-job']],
    ['estimate', ['--instance', '--volume', '--bandwidth']],
  ])('%s --help documents every option on stdout and exits 0', async (command, options) => {
    const result = await cli([command, '--help']);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    const help = result.stdout.toString();
    for (const option of [...options, '--profile', '--endpoint-url']) expect(help).toContain(option);
  });

  it('answers --version on stdout, so that $(ec2-bpipe --version) holds it', async () => {
    const result = await cli(['--version']);
    expect(result.code).toBe(0);
    const { version } = JSON.parse(readFileSync(join(BIN, '..', '..', 'package.json'), 'utf8')) as {
      version: string;
    };
    expect(result.stdout.toString()).toBe(`${version}\n`);
    expect(result.stderr).toBe('');
  });

  it('says a usage error in one line and where the options are, not the whole help', async () => {
    const result = await cli(['backup', '--no-such-flag']);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      "error: unknown option '--no-such-flag' (ec2-bpipe <command> --help lists the options)\n",
    );
  });

  it('takes --workers for both directions (and --restore-workers still), and refuses estimate --workers', async () => {
    const config = writeConfig(dir.path, em);
    for (const flag of ['--workers=0', '--restore-workers=0']) {
      const result = await cli(['restore', `--config=${config}`, '--to-dir=/tmp/x', flag, '/dev/null']);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/\[restore\] workers = "0" is invalid/);
    }
    const estimate = await cli(['estimate', `--config=${config}`, '--workers=4']);
    expect(estimate.code).toBe(2);
    expect(estimate.stderr).toContain("unknown option '--workers=4'");
  });

  it('takes --endpoint-url and --profile on the command line like their [aws] keys', async () => {
    const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 2, seed: 41 } });
    const config = join(dir.path, 'no-endpoint.ini');
    writeFileSync(
      config,
      `[aws]\nregion = us-east-1\naccess-key-id = ${credentials.accessKeyId}\nsecret-access-key = ${credentials.secretAccessKey}\n[bacula]\nstate-dir = ${join(dir.path, 'state')}\n`,
    );
    chmodSync(config, 0o600);
    const result = await cli([
      'estimate',
      `--config=${config}`,
      `--endpoint-url=${em.url}`,
      `--volume=${volumeId}`,
    ]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.toString()).toContain(volumeId);
    const both = await cli(['estimate', `--config=${config}`, '--profile=other', `--volume=${volumeId}`]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('[aws] profile and access-key-id both name credentials');
  });

  it('refuses to write a tar to a terminal, and to wait on a terminal for one', async () => {
    const config = writeConfig(dir.path, em);
    // `script` gives the command a pseudo-terminal for stdin and stdout, as an operator's shell does.
    const onTerminal = (args: string[]) =>
      cli(['-qec', [process.execPath, BIN, ...args].map((a) => `'${a}'`).join(' '), '/dev/null'], {
        command: 'script',
      });
    const backup = await onTerminal(['backup', `--config=${config}`, '--volume=vol-0123456789abcdef0']);
    expect(backup.code).toBe(2);
    expect(backup.stdout.toString()).toContain('stdout is a terminal: backup writes a tar stream there');
    for (const command of ['verify', 'restore']) {
      const result = await onTerminal(
        [command, `--config=${config}`, '--to-dir=/tmp/unused'].slice(0, command === 'verify' ? 2 : 3),
      );
      expect(result.code).toBe(2);
      expect(result.stdout.toString()).toContain(
        'no stream to read: name a stream file, or pipe one to stdin',
      );
    }
  });

  it('exits 2 on an unknown option or command, printing nothing on stdout', async () => {
    for (const args of [['backup', '--no-such-flag'], ['frobnicate']]) {
      const result = await cli(args);
      expect(result.code).toBe(2);
      expect(result.stdout.length).toBe(0);
      expect(result.stderr).toMatch(/unknown (option|command)/);
    }
  });

  it('exits 2 on a config error, naming file, section and key', async () => {
    const file = join(dir.path, 'typo.ini');
    writeFileSync(file, '[backup]\nkeep-snapshot = 3\n');
    const result = await cli(['backup', `--config=${file}`, '--volume=vol-0123456789abcdef0']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(
      `${file}: unknown key "keep-snapshot" in [backup]. Did you mean "keep-snapshots"?`,
    );
    expect(result.stdout.length).toBe(0);
  });

  it('exits 2 on a bad flag value, naming the flag', async () => {
    const config = writeConfig(dir.path, em);
    const result = await cli([
      'backup',
      `--config=${config}`,
      '--volume=vol-0123456789abcdef0',
      '--workers=0',
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--workers: \[backup\] workers = "0" is invalid/);
    const level = await cli([
      'backup',
      `--config=${config}`,
      '--volume=vol-0123456789abcdef0',
      '--level=Weekly',
    ]);
    expect(level.code).toBe(2);
    expect(level.stderr).toMatch(/--level=Weekly: expected Full, Incremental or Differential/);
  });

  it('exits 1 on a runtime failure, naming the resource', async () => {
    const config = writeConfig(dir.path, em);
    const result = await cli(['backup', `--config=${config}`, '--instance=i-0123456789abcdef0']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/i-0123456789abcdef0/);
    expect(result.stdout.length).toBe(0);
  });

  it('logs JSON lines with --log-format=json, and never a secret, even at debug level', async () => {
    const file = join(dir.path, 'secret.ini');
    writeFileSync(
      file,
      `[aws]\nregion = us-east-1\nendpoint-url = ${em.url}\naccess-key-id = AKIAIOSFODNN7EXAMPLE\nsecret-access-key = wJalrXUtnFEMI-very-secret-KEY\n`,
    );
    chmodSync(file, 0o600);
    const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 2, seed: 1 } });
    const result = await cli([
      'backup',
      `--config=${file}`,
      `--volume=${volumeId}`,
      '--log-format=json',
      '--log-level=debug',
    ]);
    expect(result.code).toBe(0);
    const lines = result.stderr.trim().split('\n');
    expect(lines.length).toBeGreaterThan(2);
    const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    for (const record of records) {
      expect(typeof record.msg).toBe('string');
      expect(record.time).toMatch(/^\d{4}-\d\d-\d\dT/);
      // The level by name, as log shippers read it; a backup's own level is `jobLevel`.
      expect(['debug', 'info', 'warn', 'error']).toContain(record.level);
    }
    // Every record of the job names it and the unit; the volume's and the job's figures are fields.
    const job = records.find((r) => r.event === 'summary')?.job;
    expect(job).toMatch(/^manual-/);
    expect(records.filter((r) => r.level === 'info' && r.job === undefined)).toEqual([]);
    expect(records.find((r) => r.event === 'volume')).toMatchObject({
      job,
      unit: volumeId,
      volume: volumeId,
      blocks: 2,
      bytes: 2 * 512 * 1024,
      mibps: expect.any(Number),
      seconds: expect.any(Number),
    });
    // The summary is the last record: what a script reads when the backup ends.
    expect(records.at(-1)).toMatchObject({
      event: 'summary',
      command: 'backup',
      job,
      unit: volumeId,
      jobLevel: 'Full',
      volumes: 1,
      blocks: 2,
      bytes: 2 * 512 * 1024,
    });
    expect(result.stderr).not.toContain('very-secret');
    // The SDK's Node-version warning is routed into the logger, never printed raw.
    expect(result.stderr).not.toMatch(/^\(node:\d+\)/m);
  });

  it('refuses --instance and --volume together', async () => {
    const config = writeConfig(dir.path, em);
    const result = await cli([
      'backup',
      `--config=${config}`,
      '--instance=i-0123456789abcdef0',
      '--volume=vol-0123456789abcdef0',
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/Give --instance or --volume, not both/);
  });

  it('selects the one unit a config names by tag, and refuses when it names several', async () => {
    await em.admin.instance({
      tags: { Backup: 'nightly-one' },
      volumes: [{ sizeGiB: 1, fill: { blocks: 1, seed: 2 } }],
    });
    const one = writeConfig(dir.path, em, '[backup]\ninstance-tags = Backup=nightly-one\n', 'one');
    const ok = await cli(['backup', `--config=${one}`, '--job=t1']);
    expect(ok.code).toBe(0);
    await em.admin.instance({ tags: { Backup: 'nightly-two' }, volumes: [{ sizeGiB: 1 }] });
    await em.admin.instance({ tags: { Backup: 'nightly-two' }, volumes: [{ sizeGiB: 1 }] });
    const two = writeConfig(dir.path, em, '[backup]\ninstance-tags = Backup=nightly-two\n', 'two');
    const refused = await cli(['backup', `--config=${two}`]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/selects 2 units \(i-[0-9a-f]+, i-[0-9a-f]+\); a backup streams one/);
  });
});

describe('an ambiguous config', () => {
  it('is refused by every command with exit 2, naming both lines of a key given twice, before any request', async () => {
    const dir = tempDir();
    const em = await emulator();
    try {
      const config = writeConfig(
        dir.path,
        em,
        '[backup]\nkeep-snapshots = 3\nworkers = 8\nkeep-snapshots = 1\n',
        'twice',
      );
      const lines = readFileSync(config, 'utf8').split('\n');
      const first = lines.indexOf('keep-snapshots = 3') + 1;
      for (const args of [['points'], ['list'], ['backup', '--volume=vol-0123456789abcdef0', '--job=j1']]) {
        const result = await cli([...args, `--config=${config}`], { stdoutFile: join(dir.path, 'out') });
        expect(result.code, args[0]).toBe(2);
        // Under list the error is a line on stdout, where Bacula's job log shows it.
        const said = args[0] === 'list' ? readFileSync(join(dir.path, 'out'), 'utf8') : result.stderr;
        expect(said, args[0]).toContain(
          `[backup] keep-snapshots at lines ${first} and ${first + 2}: give each key once (the later would silently win)`,
        );
      }
      expect(await em.admin.requests()).toEqual({});
    } finally {
      await em.close();
      dir.cleanup();
    }
  });
});

describe('a profile the shared files do not hold', () => {
  it('is refused by name, with the files looked in and the nearest profile, before any request', async () => {
    const dir = tempDir();
    const em = await emulator();
    try {
      const configFile = join(dir.path, 'aws-config');
      const credentialsFile = join(dir.path, 'aws-credentials');
      writeFileSync(configFile, '[profile backup-prod]\nregion = us-east-1\n');
      writeFileSync(credentialsFile, '[backup-prod]\naws_access_key_id = AKIAEMULATORTESTKEY1\n');
      const config = join(dir.path, 'p.ini');
      writeFileSync(config, `[aws]\nregion = us-east-1\nendpoint-url = ${em.url}\nprofile = backup-prd\n`);
      const env = { AWS_CONFIG_FILE: configFile, AWS_SHARED_CREDENTIALS_FILE: credentialsFile };
      for (const args of [['points'], ['restore', '--dry-run', join(dir.path, 'none.tar')]]) {
        const result = await cli([...args, `--config=${config}`], { env });
        expect(result.code, args[0]).toBe(2);
        expect(result.stderr).toContain(
          `[aws] profile backup-prd is in neither ${configFile} ([profile backup-prd]) nor ${credentialsFile} ([backup-prd]). ` +
            'Did you mean "backup-prod"? Known profiles: backup-prod.',
        );
      }
      expect(await em.admin.requests()).toEqual({});
    } finally {
      await em.close();
      dir.cleanup();
    }
  });
});

describe('list (the FileSet generator)', () => {
  const dir = tempDir();
  let em: Em;
  beforeAll(async () => {
    em = await emulator();
  });
  afterAll(async () => {
    await em.close();
    dir.cleanup();
  });

  it('prints two bpipe lines per unit, nothing on stderr, and logs to its file', async () => {
    const a = await em.admin.instance({ tags: { Backup: 'gen' }, volumes: [{ sizeGiB: 1 }] });
    const b = await em.admin.instance({ tags: { Backup: 'gen' }, volumes: [{ sizeGiB: 1 }] });
    const { volumeId } = await em.admin.volume({ sizeGiB: 1, tags: { Backup: 'gen-vol' } });
    const log = join(dir.path, 'list.log');
    const config = writeConfig(
      dir.path,
      em,
      `[backup]\ninstance-tags = Backup=gen\nvolume-tags = Backup=gen-vol\n[bacula]\nlog-file = ${log}\n`,
      'gen',
    );
    const before = (await em.admin.state()).snapshots.length;
    const result = await cli([
      'list',
      `--config=${config}`,
      '--job=ec2job.2026-11-21_23.45.19_03',
      '--level=Incremental',
      '--prev-job=',
    ]);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    const lines = result.stdout.toString().trim().split('\n');
    const ids = [a.instanceId, b.instanceId].sort();
    expect(lines).toHaveLength(6);
    expect(lines.map((l) => l.split(':')[1])).toEqual([
      `/@ec2-bpipe/gen/us-east-1/${ids[0]}/ec2job.2026-11-21_23.45.19_03.tar`,
      `/@ec2-bpipe/gen/us-east-1/${ids[0]}/restore.json`,
      `/@ec2-bpipe/gen/us-east-1/${ids[1]}/ec2job.2026-11-21_23.45.19_03.tar`,
      `/@ec2-bpipe/gen/us-east-1/${ids[1]}/restore.json`,
      `/@ec2-bpipe/gen/us-east-1/${volumeId}/ec2job.2026-11-21_23.45.19_03.tar`,
      `/@ec2-bpipe/gen/us-east-1/${volumeId}/restore.json`,
    ]);
    for (const line of lines) {
      expect(line).toMatch(/^bpipe:/);
      expect(line.split(':')).toHaveLength(4);
      expect(line).toContain(BIN);
    }
    expect(readFileSync(log, 'utf8')).toMatch(/job ec2job\.2026-11-21_23\.45\.19_03 \(Incremental\)/);
    // list changes nothing in AWS: a Bacula estimate runs it too.
    expect((await em.admin.state()).snapshots.length).toBe(before);
  });

  it('keeps the selected volumes of one instance in one unit, snapshotted by one CreateSnapshots', async () => {
    const host = await em.admin.instance({ volumes: [{ sizeGiB: 1 }, { sizeGiB: 1 }, { sizeGiB: 1 }] });
    const [, data1, data2] = host.volumeIds;
    const { volumeId: loose } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 1, seed: 42 } });
    const config = writeConfig(
      dir.path,
      em,
      `[backup]\nvolume-ids = ${data2},${loose},${data1}\n`,
      'grouped',
    );
    const result = await cli([
      'list',
      `--config=${config}`,
      '--job=g.2026-11-24_01.00.00_01',
      '--level=Full',
      '--prev-job=',
    ]);
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.toString().trim().split('\n');
    const pair = [data1, data2].sort().join('+');
    const units = [pair, loose].sort((x, y) => String(x).localeCompare(String(y)));
    expect(lines.map((l) => l.split(':')[1])).toEqual(
      units.flatMap((u) => [
        `/@ec2-bpipe/grouped/us-east-1/${u}/g.2026-11-24_01.00.00_01.tar`,
        `/@ec2-bpipe/grouped/us-east-1/${u}/restore.json`,
      ]),
    );
    const pairLine = lines.find((l) => l.includes(`/${pair}/g.`));
    expect(pairLine).toContain(`--volume=${[data1, data2].sort().join(',')}`);
    // That unit's backup takes both volumes in one CreateSnapshots call.
    await em.admin.call('POST', 'requests/reset');
    const backup = await cli(
      ['backup', `--config=${config}`, `--volume=${[data1, data2].sort().join(',')}`, '--job=g1'],
      { stdoutFile: join(dir.path, 'g1.tar') },
    );
    expect(backup.code, backup.stderr).toBe(0);
    const requests = await em.admin.requests();
    expect(requests['ec2:CreateSnapshots']).toBe(1);
    expect(requests['ec2:CreateSnapshot'] ?? 0).toBe(0);
  });

  it('fails the job with a one-line reason on stdout when the selection is empty, unless allow-empty', async () => {
    const none = writeConfig(dir.path, em, '[backup]\ninstance-tags = Backup=nobody\n', 'none');
    const refused = await cli(['list', `--config=${none}`, '--job=j1', '--level=Full']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toBe('');
    expect(refused.stdout.toString()).toMatch(
      /^ec2-bpipe list: .*matches no instance or volume in us-east-1; set \[bacula\] allow-empty = yes/,
    );
    expect(refused.stdout.toString().trim().split('\n')).toHaveLength(1);
    const allowed = writeConfig(
      dir.path,
      em,
      '[backup]\ninstance-tags = Backup=nobody\n[bacula]\nallow-empty = yes\n',
      'allowed',
    );
    const empty = await cli(['list', `--config=${allowed}`, '--job=j1', '--level=Full']);
    expect(empty.code).toBe(0);
    expect(empty.stdout.length + empty.stderr.length).toBe(0);
  });

  it('list refuses what backup would refuse, with the same line, before Bacula starts a reader', async () => {
    const { instanceId, volumeIds } = await em.admin.instance({
      volumes: [{ sizeGiB: 1 }, { sizeGiB: 1 }],
    });
    const cases = [
      // The root volume cannot be left out of an instance's backup.
      [
        `[backup]\ninstance-ids = ${instanceId}\nexclude-data-volume-ids = ${volumeIds[0]}\n`,
        /the root volume of/,
      ],
      // A DR copy to the Region the job backs up.
      [
        `[backup]\ninstance-ids = ${instanceId}\ncopy-to-region = us-east-1\n`,
        /a DR copy goes to another Region/,
      ],
    ] as const;
    for (const [extra, reason] of cases) {
      const config = writeConfig(dir.path, em, extra, 'same');
      const list = await cli(['list', `--config=${config}`, '--job=j1', '--level=Full']);
      expect(list.code).toBe(2);
      expect(list.stdout.toString()).toMatch(new RegExp(`^ec2-bpipe list: .*${reason.source}`));
      expect(list.stdout.toString()).not.toContain('bpipe:');
      const backup = await cli(['backup', `--config=${config}`, `--instance=${instanceId}`, '--job=j1'], {
        stdoutFile: join(dir.path, 'same.tar'),
      });
      expect(backup.code).toBe(2);
      expect(backup.stderr).toMatch(reason);
    }
  });

  it('refuses a job name with a colon, with exit 2', async () => {
    const config = writeConfig(dir.path, em, '[backup]\ninstance-ids = i-0123456789abcdef0\n', 'colon');
    const result = await cli(['list', `--config=${config}`, '--job=a:b', '--level=Full']);
    expect(result.code).toBe(2);
    expect(result.stdout.toString()).toMatch(/the job name "a:b" holds ":"/);
  });
});
