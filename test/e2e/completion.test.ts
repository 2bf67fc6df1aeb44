import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { cli } from '../helpers.js';

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
    expect(complete(script, 'ec2-bpipe completion ')).toEqual(['bash', 'zsh']);
    // Any other word is a file name.
    expect(complete(script, 'ec2-bpipe verify et')).toEqual(['etc']);
  });

  it('prints the zsh script through bashcompinit, and refuses another shell with exit 2', async () => {
    const zsh = await cli(['completion', 'zsh']);
    expect(zsh.code).toBe(0);
    expect(zsh.stdout.toString()).toMatch(/^autoload -U \+X bashcompinit && bashcompinit$/m);
    execFileSync('bash', ['-n'], { input: zsh.stdout });
    const fish = await cli(['completion', 'fish']);
    expect(fish.code).toBe(2);
    expect(fish.stderr).toMatch(/value 'fish' is invalid.*bash, zsh/);
  });
});
