import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The version has one home, package.json. This module finds it from wherever it runs: src/ under
 * tsx in the tests, dist/bundle/ when built, or an installed package.
 */
function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
      if (typeof parsed === 'object' && parsed !== null && 'name' in parsed && parsed.name === 'ec2-bpipe') {
        if ('version' in parsed && typeof parsed.version === 'string') return parsed.version;
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('ec2-bpipe: its package.json was not found above its modules');
    dir = up;
  }
}

export const VERSION = packageVersion();
