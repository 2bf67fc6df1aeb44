import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

describe('the npm package', () => {
  it('ships the bundle, the examples --help points to and the LICENSE, and not the demo that needs the emulator', () => {
    // --ignore-scripts: the build is the test tier's own; packing must not rebuild dist under it.
    const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      cwd: new URL('../..', import.meta.url),
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const [pack] = JSON.parse(out.toString()) as { files: { path: string }[] }[];
    const files = pack?.files.map((f) => f.path) ?? [];
    for (const path of [
      'LICENSE',
      'README.md',
      'bin/ec2-bpipe',
      'dist/bundle/cli.js',
      'examples/ec2-bpipe.ini',
      'examples/bacula/ec2-bpipe-dir.conf',
      'examples/bacula/ec2-bpipe-fd.conf',
      'examples/bacula/iam-policy.json',
      'examples/check-stream.sh',
    ])
      expect(files, path).toContain(path);
    expect(files).not.toContain('examples/demo.ts');
    expect(
      files.filter((f) => f.startsWith('src/') || f.startsWith('test/') || f.startsWith('emulator/')),
    ).toEqual([]);
  });
});
