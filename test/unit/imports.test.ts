/**
 * The module graph of src/: no import cycle, nothing imports the CLI wiring, the stream format
 * depends on nothing of AWS, and nothing in src/ knows the emulator or the tests exist.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = resolve(import.meta.dirname, '..', '..', 'src');

/** The modules outside src/format/ that the persisted contracts build on: ids, errors, durable writes. */
const FORMAT_MAY_USE = ['ids.ts', 'errors.ts', 'version.ts', 'durable.ts', 'crash-points.ts'];

function modules(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const entry of readdirSync(SRC, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.ts')) continue;
    const file = join(entry.parentPath, entry.name);
    const text = readFileSync(file, 'utf8');
    // Static and dynamic imports and re-exports of relative modules.
    const specifiers = [...text.matchAll(/(?:from|import\()\s*'(\.{1,2}\/[^']+)'/g)].map((m) => m[1]!);
    graph.set(
      relative(SRC, file),
      specifiers.map((s) => relative(SRC, resolve(dirname(file), s)).replace(/\.js$/, '.ts')),
    );
  }
  return graph;
}

/** Every cycle, each as the path that closes it. */
function cycles(graph: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string): void => {
    state.set(node, 'open');
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === 'open') found.push([...stack.slice(stack.indexOf(next)), next]);
      else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(node, 'done');
  };
  for (const node of graph.keys()) if (!state.has(node)) visit(node);
  return found;
}

describe('the module graph of src/', () => {
  const graph = modules();

  it('is read: it holds the modules and their imports', () => {
    expect(graph.size).toBeGreaterThan(20);
    expect(graph.get('cli.ts')?.length).toBeGreaterThan(0);
    expect([...graph.keys()].filter((m) => m.startsWith('format/')).length).toBeGreaterThanOrEqual(12);
  });

  it('has no import cycle', () => {
    expect(cycles(graph).map((c) => c.join(' -> '))).toEqual([]);
  });

  it('finds a cycle when there is one (the check can fail)', () => {
    const looped = new Map([
      ['a.ts', ['b.ts']],
      ['b.ts', ['c.ts']],
      ['c.ts', ['a.ts']],
    ]);
    expect(cycles(looped)).toEqual([['a.ts', 'b.ts', 'c.ts', 'a.ts']]);
  });

  it('lets nothing import cli.ts, and keeps the stream format free of AWS and the emulator', () => {
    for (const [module, imports] of graph) {
      expect(imports, module).not.toContain('cli.ts');
      if (module.startsWith('stream/') || module.startsWith('format/')) {
        expect(
          imports.filter((i) => i.startsWith('aws/')),
          module,
        ).toEqual([]);
      }
      // The persisted contracts stand alone: a command, the backup or a restore may use them, never
      // the other way round, so that what a release wrote is defined in one place.
      if (module.startsWith('format/')) {
        expect(
          imports.filter((i) => !i.startsWith('format/') && !FORMAT_MAY_USE.includes(i)),
          module,
        ).toEqual([]);
      }
      expect(
        imports.filter((i) => i.startsWith('..')),
        module,
      ).toEqual([]);
    }
  });

  it('calls AWS only from aws/: elsewhere an SDK import is a type or a constant, never a command, client or paginator', () => {
    const calls = (file: string): string[] => {
      const text = readFileSync(join(SRC, file), 'utf8');
      return [...text.matchAll(/import (type )?\{([^}]*)\} from '@aws-sdk\/[\w-]+'/g)].flatMap((m) =>
        m[1] === undefined
          ? (m[2] ?? '')
              .split(',')
              .map((n) => n.trim())
              .filter((n) => n !== '' && !n.startsWith('type '))
              .filter((n) => /Command$|Client$|^paginate|^waitUntil|^waitFor/.test(n))
          : [],
      );
    };
    for (const module of graph.keys()) {
      if (!module.startsWith('aws/')) expect(calls(module), module).toEqual([]);
      if (!module.startsWith('aws/'))
        expect(readFileSync(join(SRC, module), 'utf8'), module).not.toMatch(/\.send\(/);
    }
    // The check can fail: aws/ itself sends, through the names it forbids elsewhere.
    expect(calls('aws/snapshots.ts')).toContain('DescribeSnapshotsCommand');
  });
});
