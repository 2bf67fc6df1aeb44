import { describe, expect, it } from 'vitest';
import { bpipeLines, checkValue, MAX_LINE } from '../../src/commands/list.js';
import { UsageError } from '../../src/errors.js';

const request = {
  program: '/usr/local/bin/ec2-bpipe',
  config: '/etc/ec2-bpipe/web.ini',
  configName: 'web',
  region: 'eu-west-1',
  job: 'ec2job.2026-11-21_23.45.19_03',
  level: 'Incremental',
  prevJob: 'ec2job.2026-11-20_23.45.02_58',
};
const instance = {
  kind: 'instance' as const,
  resourceId: 'i-0123456789abcdef0',
  instanceId: 'i-0123456789abcdef0',
};

describe('bpipe plugin lines', () => {
  it('prints the data line for the job, then the constant-name finalizer', () => {
    const [data, finalizer] = bpipeLines(request, instance);
    expect(data).toBe(
      'bpipe:/@ec2-bpipe/web/eu-west-1/i-0123456789abcdef0/ec2job.2026-11-21_23.45.19_03.tar:' +
        '/usr/local/bin/ec2-bpipe backup --config=/etc/ec2-bpipe/web.ini --instance=i-0123456789abcdef0 ' +
        '--job=ec2job.2026-11-21_23.45.19_03 --level=Incremental --prev-job=ec2job.2026-11-20_23.45.02_58:' +
        '/usr/local/bin/ec2-bpipe restore --config=/etc/ec2-bpipe/web.ini --where=%w --replace=%r --no-launch --skip-incomplete',
    );
    expect(finalizer).toBe(
      'bpipe:/@ec2-bpipe/web/eu-west-1/i-0123456789abcdef0/restore.json:' +
        '/usr/local/bin/ec2-bpipe backup --finalizer --config=/etc/ec2-bpipe/web.ini --instance=i-0123456789abcdef0 ' +
        '--job=ec2job.2026-11-21_23.45.19_03:' +
        '/usr/local/bin/ec2-bpipe restore --config=/etc/ec2-bpipe/web.ini --where=%w --replace=%r',
    );
    // Bacula splits on ":" into exactly four fields.
    for (const line of [data!, finalizer!]) expect(line.split(':')).toHaveLength(4);
  });

  it('writes --where=%w as one word, so an empty Where cannot shift the arguments', () => {
    for (const line of bpipeLines(request, instance)) expect(line).toMatch(/ --where=%w /);
  });

  it('keeps an empty %S as an empty --prev-job, and lists volume units by id', () => {
    const [data] = bpipeLines(
      { ...request, level: 'Full', prevJob: '' },
      { kind: 'volumes', resourceId: 'vol-0123456789abcdef0', volumeIds: ['vol-0123456789abcdef0'] },
    );
    expect(data).toContain('/@ec2-bpipe/web/eu-west-1/vol-0123456789abcdef0/');
    expect(data).toContain(
      '--volume=vol-0123456789abcdef0 --job=ec2job.2026-11-21_23.45.19_03 --level=Full --prev-job=:',
    );
  });

  it.each([
    ['C:/configs/web.ini', /holds ":"/],
    ['/etc/my configs/web.ini', /holds a blank/],
    ['/etc/"web".ini', /holds """/],
  ])('refuses a value Bacula cannot carry: %s', (value, pattern) => {
    expect(() => checkValue('the config path', value)).toThrow(UsageError);
    expect(() => checkValue('the config path', value)).toThrow(pattern);
  });

  it('refuses a line of 1000 bytes or more', () => {
    const long = { ...request, config: `/etc/${'x'.repeat(900)}.ini` };
    expect(() => bpipeLines(long, instance)).toThrow(/would be \d+ bytes; Bacula cuts lines at 1000/);
    const fits = { ...request, config: `/etc/${'x'.repeat(200)}.ini` };
    for (const line of bpipeLines(fits, instance))
      expect(Buffer.byteLength(line)).toBeLessThanOrEqual(MAX_LINE);
  });
});
