import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, tempDir } from '../helpers.js';

/** What bash completes for `line` (the cursor at its end), with the script the binary prints. */
function complete(script: string, line: string): string[] {
  const words = line.split(' ');
  const program = [
    script,
    `COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')})`,
    `COMP_CWORD=${words.length - 1}`,
    '_ec2_bpipe',
    'printf "%s\\n" "${COMPREPLY[@]}"',
  ].join('\n');
  return execFileSync('bash', ['-c', program], { cwd: '/' }).toString().split('\n').filter(Boolean);
}

/** fish is in CI's packages (.ci/run); a machine without it skips its case, saying so. */
const hasFish = spawnSync('fish', ['--version']).status === 0;
if (!hasFish)
  process.stderr.write(
    '\nSKIPPED: the fish completion test needs fish (apt-get install fish; .ci/run does).\n\n',
  );

describe('shell completion', () => {
  it('completes commands, each command’s own options, and the values of fixed-choice options in bash', async () => {
    const result = await cli(['completion', 'bash']);
    expect(result.code, result.stderr).toBe(0);
    const script = result.stdout.toString();
    expect(complete(script, 'ec2-bpipe re')).toEqual(['restore']);
    expect(complete(script, 'ec2-bpipe d')).toEqual(['doctor']);
    expect(complete(script, 'ec2-bpipe backup --wo')).toEqual(['--workers']);
    expect(complete(script, 'ec2-bpipe restore --dry')).toEqual(['--dry-run']);
    // Restore's hidden former flag is not offered; backup has no --to-dir.
    expect(complete(script, 'ec2-bpipe restore --restore')).toEqual([]);
    expect(complete(script, 'ec2-bpipe backup --to')).toEqual([]);
    expect(complete(script, 'ec2-bpipe backup --level ')).toEqual(['Full', 'Incremental', 'Differential']);
    expect(complete(script, 'ec2-bpipe verify --log-format j')).toEqual(['json']);
    expect(complete(script, 'ec2-bpipe completion ')).toEqual(['bash', 'zsh', 'fish']);
    // `--opt=<TAB>`: bash splits the word at `=`, so the words are the option, `=` and the value.
    expect(complete(script, 'ec2-bpipe backup --level = ')).toEqual(['Full', 'Incremental', 'Differential']);
    expect(complete(script, 'ec2-bpipe backup --level = In')).toEqual(['Incremental']);
    expect(complete(script, 'ec2-bpipe backup --level =')).toEqual(['Full', 'Incremental', 'Differential']);
    expect(complete(script, 'ec2-bpipe restore --replace = ')).toEqual(['a', 'w', 'o', 'n']);
    expect(complete(script, 'ec2-bpipe list --log-level = w')).toEqual(['warn']);
    // Where `=` breaks no word (zsh's bashcompinit), the word comes whole.
    expect(complete(script, 'ec2-bpipe backup --level=Di')).toEqual(['--level=Differential']);
    // Any other word is a file name.
    expect(complete(script, 'ec2-bpipe verify et')).toEqual(['etc']);
  });

  it('prints the zsh script through bashcompinit, and refuses another shell with exit 2', async () => {
    const zsh = await cli(['completion', 'zsh']);
    expect(zsh.code).toBe(0);
    expect(zsh.stdout.toString()).toMatch(/^autoload -U \+X bashcompinit && bashcompinit$/m);
    execFileSync('bash', ['-n'], { input: zsh.stdout });
    const other = await cli(['completion', 'tcsh']);
    expect(other.code).toBe(2);
    expect(other.stderr).toMatch(/value 'tcsh' is invalid.*bash, zsh, fish/);
  });

  it.skipIf(!hasFish)(
    'gives fish its own completions: commands, options, and values after = or a blank',
    async () => {
      const result = await cli(['completion', 'fish']);
      expect(result.code, result.stderr).toBe(0);
      const script = join(tempDir().path, 'ec2-bpipe.fish');
      writeFileSync(script, result.stdout);
      const fish = (line: string): string[] =>
        execFileSync('fish', ['--no-config', '-c', `source '${script}'; complete -C '${line}'`], { cwd: '/' })
          .toString()
          .split('\n')
          .filter(Boolean)
          .map((l) => l.split('\t')[0]!)
          // In the order fish chose: compared as a set.
          .sort();
      expect(fish('ec2-bpipe re')).toEqual(['restore']);
      expect(fish('ec2-bpipe backup --wor')).toEqual(['--workers']);
      expect(fish('ec2-bpipe backup --level=')).toEqual([
        '--level=Differential',
        '--level=Full',
        '--level=Incremental',
      ]);
      expect(fish('ec2-bpipe backup --level ')).toEqual(['Differential', 'Full', 'Incremental']);
      expect(fish('ec2-bpipe completion ')).toEqual(['bash', 'fish', 'zsh']);
      // Restore's hidden former flag is not offered; backup has no --to-dir.
      expect(fish('ec2-bpipe restore --restore')).toEqual([]);
      expect(fish('ec2-bpipe backup --to-')).toEqual([]);
    },
  );
});

describe('ec2-bpipe man', () => {
  it('prints a manual page that groff reads without a warning, with every command and option', async () => {
    const result = await cli(['man']);
    expect(result.code, result.stderr).toBe(0);
    const page = result.stdout.toString();
    const checked = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-z'], { input: page });
    expect(checked.status).toBe(0);
    expect(checked.stderr.toString()).toBe('');
    // -P -cbou: plain text, with neither escape sequences nor overstruck bold and underline.
    const text = spawnSync('groff', ['-man', '-Tutf8', '-P', '-cbou'], {
      input: page,
      env: { ...process.env, MANWIDTH: '200' },
    }).stdout.toString();
    for (const command of [
      'backup',
      'restore',
      'verify',
      'list',
      'points',
      'estimate',
      'doctor',
      'completion',
    ])
      expect(text).toContain(`ec2-bpipe ${command}`);
    const help = await cli(['restore', '--help']);
    for (const flag of help.stdout.toString().match(/--[a-z][a-z0-9-]+/g) ?? [])
      if (flag !== '--help') expect(text, flag).toContain(flag);
    expect(text).toMatch(/EXIT STATUS/);
  });
});
