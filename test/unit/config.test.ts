import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { knownKeys, loadConfig, parseTags } from '../../src/config.js';
import { UsageError } from '../../src/errors.js';
import { tempDir } from '../helpers.js';

const dir = tempDir('ec2-bpipe-config-');
afterAll(() => dir.cleanup());

let n = 0;
function file(content: string, mode = 0o600, name?: string): string {
  const path = join(dir.path, name ?? `c${++n}.ini`);
  writeFileSync(path, content);
  chmodSync(path, mode);
  return path;
}

function failure(content: string, mode = 0o600): UsageError {
  const path = file(content, mode);
  try {
    loadConfig(path);
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    const usage = err as UsageError;
    expect(usage.exitCode).toBe(2);
    expect(usage.message).toContain(path);
    return usage;
  }
  throw new Error('expected the config to be refused');
}

describe('config loading', () => {
  it('reads every section with defaults for what is not set', () => {
    const path = file(
      [
        '[aws]',
        'region = eu-west-1',
        'role-arn = arn:aws:iam::123456789012:role/backup',
        'external-id = ext-1',
        'session-duration = 3600',
        'endpoint-type = dualstack-fips',
        '[backup]',
        'instance-ids = i-0123456789abcdef0, i-0123456789abcdef1',
        'instance-tags = Backup=daily,Env=prod',
        'volume-ids = vol-0123456789abcdef0',
        'exclude-data-volume-ids = vol-0123456789abcdef1',
        'workers = 16',
        'snapshot-tags = Owner=ops',
        'copy-volume-tags = yes',
        'keep-snapshots = 3',
        'snapshot-timeout = 7200',
        '[restore]',
        'workers = 4',
        'region = us-east-1',
        'instance-type = m5.large',
        'subnet-id = subnet-0123456789abcdef0',
        'security-group-ids = sg-0123456789abcdef0,sg-0123456789abcdef1',
        'key-name = ops',
        'placement-group = pg',
        'partition-number = 2',
        'kms-key-id = arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab',
        'create-volume = yes',
        'availability-zone = us-east-1b',
        'keep-image = true',
        'tags = Restored=yes',
        '[bacula]',
        'state-dir = /var/tmp/ec2-bpipe',
        'log-file = /var/log/ec2-bpipe.log',
      ].join('\n'),
      0o644,
      'web.ini',
    );
    const config = loadConfig(path);
    expect(config.name).toBe('web');
    expect(config.aws).toMatchObject({
      region: 'eu-west-1',
      sessionDuration: 3600,
      endpointType: 'dualstack-fips',
      roleSessionName: 'ec2-bpipe',
    });
    expect(config.backup).toMatchObject({
      instanceIds: ['i-0123456789abcdef0', 'i-0123456789abcdef1'],
      instanceTags: { Backup: 'daily', Env: 'prod' },
      workers: 16,
      copyVolumeTags: true,
      keepSnapshots: 3,
      snapshotTimeout: 7200,
    });
    expect(config.restore).toMatchObject({
      workers: 4,
      keepImage: true,
      partitionNumber: 2,
      securityGroupIds: ['sg-0123456789abcdef0', 'sg-0123456789abcdef1'],
    });
    expect(config.bacula).toMatchObject({
      stateDir: '/var/tmp/ec2-bpipe',
      logFile: '/var/log/ec2-bpipe.log',
      allowEmpty: false,
    });
  });

  it('names an unknown key and suggests the nearest known one', () => {
    const err = failure('[backup]\nworkres = 4\n');
    expect(err.message).toMatch(/unknown key "workres" in \[backup\]/);
    expect(err.message).toMatch(/Did you mean "workers"\?/);
  });

  it('names an unknown section and suggests the nearest', () => {
    const err = failure('[bakup]\nworkers = 4\n');
    expect(err.message).toMatch(/unknown section \[bakup\]/);
    expect(err.message).toMatch(/Did you mean "backup"\?/);
  });

  it('refuses a key outside any section', () => {
    expect(failure('workers = 4\n').message).toMatch(/"workers" is outside any section/);
  });

  it.each([
    [
      '[backup]\nworkers = many\n',
      /\[backup\] workers = "many" is invalid: expected a whole number from 1 to 256/,
    ],
    ['[backup]\nworkers = 0\n', /\[backup\] workers = "0" is invalid: expected a whole number from 1 to 256/],
    ['[backup]\ncopy-volume-tags = perhaps\n', /copy-volume-tags = "perhaps" is invalid: expected yes or no/],
    [
      '[backup]\ninstance-ids = i-123,web\n',
      /instance-ids = "i-123,web" is invalid \("i-123" is not instance id/,
    ],
    [
      '[backup]\ninstance-tags = Backup\n',
      /instance-tags = "Backup" is invalid \("Backup" is not Key=Value\)/,
    ],
    ['[backup]\nsnapshot-tags = aws:x=1\n', /reserved aws: prefix/],
    [
      '[aws]\nendpoint-type = ipv6\n',
      /endpoint-type = "ipv6" is invalid: expected one of ipv4, dualstack, fips, dualstack-fips/,
    ],
    [
      '[aws]\nendpoint-url = ftp://x\n',
      /endpoint-url = "ftp:\/\/x" is invalid: expected an http:\/\/ or https:\/\/ URL/,
    ],
    ['[aws]\nregion = Europe\n', /region = "Europe" is invalid: expected an AWS region name/],
    ['[aws]\nrole-arn = backup\n', /role-arn = "backup" is invalid: expected an IAM role ARN/],
    [
      '[restore]\npartition-number = 9\n',
      /partition-number = "9" is invalid: expected a whole number from 1 to 7/,
    ],
    [
      '[bacula]\nstate-dir = relative/dir\n',
      /state-dir = "relative\/dir" is invalid: expected an absolute directory path/,
    ],
  ])('refuses a bad value and says what is expected: %s', (content, pattern) => {
    expect(failure(content).message).toMatch(pattern);
  });

  it('hides a secret value in the message', () => {
    const err = failure('[aws]\naccess-key-id = AKIAIOSFODNN7EXAMPLE\nsecret-access-key =\n');
    expect(err.message).toMatch(/secret-access-key = \(hidden\) is invalid/);
  });

  it.each([
    ['[aws]\naccess-key-id = AKIAIOSFODNN7EXAMPLE\n', /access-key-id and secret-access-key go together/],
    ['[aws]\nexternal-id = x\n', /external-id and session-duration need role-arn/],
    [
      '[aws]\nprofile = p\naccess-key-id = AKIAIOSFODNN7EXAMPLE\nsecret-access-key = s\n',
      /profile and access-key-id both name credentials/,
    ],
    ['[restore]\npartition-number = 2\n', /partition-number needs placement-group/],
  ])('refuses keys that need another key: %s', (content, pattern) => {
    expect(failure(content).message).toMatch(pattern);
  });

  it('refuses a config holding a secret key that group or others can read, with the chmod that fixes it', () => {
    const err = failure('[aws]\naccess-key-id = AKIAIOSFODNN7EXAMPLE\nsecret-access-key = s3cret\n', 0o640);
    expect(err.message).toMatch(/readable by group or others \(mode 640\)\. Run: chmod 600 /);
    expect(err.message).not.toContain('s3cret');
  });

  it('accepts the same config at mode 0600', () => {
    const config = loadConfig(
      file('[aws]\naccess-key-id = AKIAIOSFODNN7EXAMPLE\nsecret-access-key = s3cret\n'),
    );
    expect(config.aws.secretAccessKey).toBe('s3cret');
  });

  it('names a missing file', () => {
    expect(() => loadConfig(join(dir.path, 'absent.ini'))).toThrow(
      /absent\.ini: cannot read the config file \(ENOENT\)/,
    );
  });

  it('refuses what the INI parser would take silently, naming the lines', () => {
    expect(
      failure('[aws]\nregion = us-east-1\n\n[backup]\nworkers = 4\n[aws]\nprofile = x\n').message,
    ).toMatch(/section \[aws\] at lines 1 and 6: give each section once/);
    expect(failure('[backup]\nworkers = 4\n; a comment\nworkers = 16\n').message).toMatch(
      /\[backup\] workers at lines 2 and 4: give each key once \(the later would silently win\)/,
    );
    expect(failure('region = us-east-1\n[aws]\n').message).toMatch(
      /line 1: key "region" is outside any section/,
    );
    // Before: `constructor` reached Object's own member and crashed with a TypeError.
    expect(failure('[aws]\nconstructor = x\n').message).toMatch(
      /line 2: "constructor" in \[aws\] is no config key/,
    );
    expect(failure('[aws]\n__proto__ = x\n').message).toMatch(/"__proto__" in \[aws\] is no config key/);
    expect(failure('[constructor]\nx = 1\n').message).toMatch(/unknown section \[constructor\]/);
    expect(failure('[backup]\ninstance-ids[] = i-0123456789abcdef0\n').message).toMatch(/is no config key/);
  });

  it('refuses a command the INI parser would cut at ; or #, and keeps a quoted or escaped one whole', () => {
    expect(failure('[backup]\npre-snapshot-command = fsfreeze -f /data; sync\n').message).toMatch(
      /line 2: \[backup\] pre-snapshot-command holds ";" or "#".*Quote the whole value/,
    );
    expect(failure('[backup]\npost-snapshot-command = thaw # then log\n').message).toMatch(
      /holds ";" or "#"/,
    );
    const quoted = loadConfig(file("[backup]\npre-snapshot-command = 'fsfreeze -f /data; sync'\n"));
    expect(quoted.backup.preSnapshotCommand).toBe('fsfreeze -f /data; sync');
    const escaped = loadConfig(file('[backup]\npre-snapshot-command = fsfreeze -f /data\\; sync\n'));
    expect(escaped.backup.preSnapshotCommand).toBe('fsfreeze -f /data; sync');
    // Elsewhere an inline comment is only a comment.
    expect(loadConfig(file('[aws]\nregion = eu-west-1 ; primary\n')).aws.region).toBe('eu-west-1');
  });

  it('parses tags with empty values and trims spaces', () => {
    expect(parseTags(' A = 1 , B= ,C=x=y')).toEqual({ A: '1', B: '', C: 'x=y' });
  });

  it('refuses tags AWS would refuse in the middle of a job: long keys and values, and more than fit', () => {
    const line = (n: number) => Array.from({ length: n }, (_, i) => `T${i}=v`).join(',');
    expect(failure(`[restore]\ntags = ${'k'.repeat(128)}=v\n`).message).toMatch(
      /is 128 characters; AWS takes 127/,
    );
    expect(failure(`[restore]\ntags = k=${'v'.repeat(256)}\n`).message).toMatch(
      /the value of tag k is 256 characters; AWS takes 255/,
    );
    expect(failure(`[restore]\ntags = ${line(43)}\n`).message).toMatch(
      /\[restore\] tags has 43 tags; at most 42 fit beside ec2-bpipe's own/,
    );
    expect(failure(`[backup]\nsnapshot-tags = ${line(39)}\n`).message).toMatch(
      /\[backup\] snapshot-tags has 39 tags; at most 38 fit/,
    );
    // At the limits, accepted.
    expect(
      loadConfig(file(`[restore]\ntags = ${line(41)},${'k'.repeat(127)}=${'v'.repeat(255)}\n`)),
    ).toBeDefined();
  });
});

describe('examples/ec2-bpipe.ini', () => {
  const example = join(import.meta.dirname, '..', '..', 'examples', 'ec2-bpipe.ini');

  it('loads as it ships', () => {
    const config = loadConfig(example);
    expect(config.backup.instanceIds).toEqual(['i-0123456789abcdef0']);
  });

  it('documents every key the loader knows', async () => {
    const { readFileSync } = await import('node:fs');
    const text = readFileSync(example, 'utf8');
    for (const section of ['aws', 'backup', 'restore', 'bacula'] as const) {
      const body = text.split(`\n[${section}]\n`)[1]!.split(/^\[/m)[0]!;
      for (const key of knownKeys(section))
        expect(body, `[${section}] ${key}`).toMatch(new RegExp(`^;?${key} =`, 'm'));
    }
  });
});
