import { spawn } from 'node:child_process';
import { readFileSync, symlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort, ROOT, tempDir } from '../helpers.js';

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

/** The lines of one `## ` section, heading excluded. */
function section(title: string): string[] {
  const start = readme.indexOf(`\n## ${title}\n`);
  expect(start, title).toBeGreaterThan(0);
  const body = readme.slice(start + title.length + 5);
  return body.slice(0, body.search(/\n## /)).trim().split('\n');
}

describe('the README a Bacula administrator reads', () => {
  it('opens with a contents list, then the Bacula setup in 30 lines, then by hand, then the reference', () => {
    const headings = [...readme.matchAll(/^## (.+)$/gm)].map((m) => m[1]);
    expect(headings.slice(0, 6)).toEqual([
      'Contents',
      'Set up with Bacula',
      'By hand and from cron',
      'Try it by hand against the emulator',
      'Install',
      'Commands',
    ]);
    // Every entry of the contents list names a heading that exists.
    for (const [, anchor] of section('Contents')
      .join('\n')
      .matchAll(/\]\(#([\w-]+)\)/g)) {
      expect(
        headings.map((h) =>
          h!
            .toLowerCase()
            .replace(/[^\w ]/g, '')
            .replace(/ /g, '-'),
        ),
      ).toContain(anchor);
    }
    expect(section('Set up with Bacula').length).toBeLessThanOrEqual(30);
    expect(section('Set up with Bacula').join('\n')).toMatch(
      /FileSet[\s\S]*Type = Backup[\s\S]*Type = Restore/,
    );
  });

  it('says the Node versions CI tests, no more', () => {
    const ci = readFileSync(join(ROOT, '.ci', 'run'), 'utf8');
    expect(ci).toMatch(/for major in 22 24; do/);
    expect(section('Install').join(' ')).toMatch(
      /Node\.js 22 or 24: CI runs the unit and end-to-end tiers on both\. Node 20/,
    );
    expect(readme).not.toMatch(/about 4 minutes/);
  });

  it('its emulator recipe runs as written: backups, verify, points and a restore to files', async () => {
    const recipe = /## Try it by hand against the emulator[\s\S]*?```sh\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(recipe).toBeDefined();
    const work = tempDir('ec2-bpipe-readme-');
    try {
      // The checkout, as the recipe expects to run in it (the binary, the emulator, tsx), without
      // writing into it; and a free port.
      for (const entry of ['bin', 'emulator', 'node_modules'])
        symlinkSync(join(ROOT, entry), join(work.path, entry));
      const port = String(await freePort());
      const script = recipe!
        .replace('npm ci && npm run build\n', '') // the test tier built it
        .replaceAll('4566', port)
        // and waits for the emulator `kill %1` stopped, so that its port is closed when bash ends.
        .concat('wait || true\n');
      const output = await new Promise<{ code: number | null; out: string }>((resolve) => {
        const child = spawn('bash', ['-e', '-c', script], { cwd: work.path, detached: true });
        let out = '';
        child.stdout.on('data', (c: Buffer) => (out += c.toString()));
        child.stderr.on('data', (c: Buffer) => (out += c.toString()));
        child.on('close', (code) => resolve({ code, out }));
      });
      expect(output.code, output.out).toBe(0);
      expect(output.out).toMatch(/ok full-1\.tar vol-\w+ vol-\w+ Full job=full-1 blocks=8/);
      expect(output.out).toMatch(/ok inc-1\.tar vol-\w+ vol-\w+ Incremental job=inc-1 blocks=2/);
      expect(output.out).toMatch(/vol-\w+\s+inc-1\s+Incremental\s+full-1\s+complete/);
      expect(output.out).toMatch(/image .*images\/vol-\w+\/vol-\w+\.ebs/);
      // `kill %1` ended the emulator: its port refuses connections.
      const refused = await new Promise<boolean>((resolve) => {
        const socket = connect(Number(port), '127.0.0.1');
        socket.once('connect', () => {
          socket.destroy();
          resolve(false);
        });
        socket.once('error', () => resolve(true));
      });
      expect(refused).toBe(true);
    } finally {
      work.cleanup();
    }
  });
});
