import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..');
const SERVICE: Record<string, string> = { ec2: 'ec2', ebs: 'ebs', kms: 'kms', sts: 'sts', iam: 'iam' };

/**
 * Every AWS action src/ calls: the Commands and paginators it imports from each SDK client.
 * `except` leaves out files (paths under src/), such as the doctor, which only probes the others'.
 */
export function calledActions(except: string[] = []): Set<string> {
  const actions = new Set<string>();
  const files = (readdirSync(join(ROOT, 'src'), { recursive: true }) as string[]).filter(
    (f) => f.endsWith('.ts') && !except.includes(f),
  );
  for (const file of files) {
    const text = readFileSync(join(ROOT, 'src', file), 'utf8');
    for (const match of text.matchAll(/import \{([^}]*)\} from '@aws-sdk\/client-(\w+)'/g)) {
      const service = SERVICE[match[2] ?? ''];
      if (service === undefined) continue;
      for (const raw of (match[1] ?? '').split(',')) {
        const name = raw.trim().replace(/^type /, '');
        const command = /^(\w+)Command$/.exec(name)?.[1] ?? /^paginate(\w+)$/.exec(name)?.[1];
        if (command !== undefined) actions.add(`${service}:${command}`);
      }
    }
  }
  return actions;
}
