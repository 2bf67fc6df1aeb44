import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, ROOT, tempDir, withEmulator, writeConfig } from '../helpers.js';

describe('the packed package, installed as a user installs it', () => {
  it('installs from its tarball into an empty directory with no dependency and no script, and runs', async () => {
    const work = tempDir('ec2-bpipe-pack-');
    try {
      // --ignore-scripts: the test tier built dist already; prepack would build it again.
      const packed = execFileSync(
        'npm',
        ['pack', '--json', '--ignore-scripts', '--pack-destination', work.path],
        { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      const [pack] = JSON.parse(packed.toString()) as { filename: string; files: { path: string }[] }[];
      const tarball = join(work.path, pack!.filename);
      const manifest = JSON.parse(
        execFileSync('tar', ['-xOzf', tarball, 'package/package.json']).toString(),
      ) as { dependencies?: object; scripts?: Record<string, string> };
      // Nothing to fetch, nothing run at install: the bundle holds every library it uses.
      expect(manifest.dependencies ?? {}).toEqual({});
      expect(
        Object.keys(manifest.scripts ?? {}).filter((s) => /^(pre|post)?install$|^prepare$/.test(s)),
      ).toEqual([]);

      const prefix = join(work.path, 'empty');
      const install = spawnSync(
        'npm',
        ['install', '--prefix', prefix, '--offline', '--no-audit', '--no-fund', tarball],
        { encoding: 'utf8' },
      );
      expect(install.status, install.stderr).toBe(0);
      expect(install.stderr).not.toMatch(/warn/i);
      expect(readdirSync(join(prefix, 'node_modules')).filter((d) => !d.startsWith('.'))).toEqual([
        'ec2-bpipe',
      ]);
      const bin = join(prefix, 'node_modules', '.bin', 'ec2-bpipe');
      const help = await cli(['doctor', '--help'], { command: bin });
      expect(help.code, help.stderr).toBe(0);
      expect(help.stdout.toString()).toMatch(/^Usage: ec2-bpipe doctor/);

      // The installed copy backs up through the AWS SDK and verifies, with nothing but itself.
      await withEmulator({}, async (em, dir) => {
        const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 3, seed: 91 } });
        const config = writeConfig(dir.path, em, `[backup]\nvolume-ids = ${volumeId}\n`, 'packed');
        const tar = join(dir.path, 'p.tar');
        const backup = await cli(['backup', `--config=${config}`, '--job=p1'], {
          command: bin,
          stdoutFile: tar,
        });
        expect(backup.code, backup.stderr).toBe(0);
        const verify = await cli(['verify', tar], { command: bin });
        expect(verify.code, verify.stderr).toBe(0);
        expect(verify.stdout.toString()).toContain(`${volumeId} Full job=p1 blocks=3`);
      });

      // What the README links to is in the package, and --help's examples; not the demo that
      // needs the emulator, nor sources and tests.
      const shipped = new Set(pack!.files.map((f) => f.path));
      for (const path of [
        'LICENSE',
        'README.md',
        'CHANGELOG.md',
        'bin/ec2-bpipe',
        'dist/bundle/cli.js',
        'docs/JSON.md',
      ])
        expect(shipped, path).toContain(path);
      expect(shipped).not.toContain('examples/demo.ts');
      expect([...shipped].filter((f) => /^(src|test|emulator|bench|scripts)\//.test(f))).toEqual([]);
      const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
      const links = [...readme.matchAll(/[(`]((?:docs|examples)\/[\w./-]+\.\w+)[)`#]/g)];
      expect(links.length).toBeGreaterThan(5);
      for (const [, link] of links) expect(shipped, link).toContain(link);
    } finally {
      work.cleanup();
    }
  });
});
