/**
 * `npm run build`: bundles the CLI (src/cli.ts, TypeScript that esbuild strips of its types; `npm
 * run typecheck` checks them) into dist/bundle, one file per command plus shared chunks. Node then reads a few files instead of resolving and loading
 * several hundred modules of the AWS SDK one by one: `ec2-bpipe list`, run at every Bacula job
 * start, went from about 0.39 s to 0.27 s, and to 0.20 s once bundled from the SDK's ES modules
 * (docs/PERFORMANCE.md). The commands stay lazily loaded (cli.ts imports each on use), so `list`
 * still loads no restore code.
 */
import { rmSync } from 'node:fs';
import { build } from 'esbuild';

// Chunks are named by content: the chunks of an earlier build would otherwise stay beside the new.
// dist/src is what tsc emitted before esbuild read the sources itself: gone with it.
rmSync('dist/bundle', { recursive: true, force: true });
rmSync('dist/src', { recursive: true, force: true });

await build({
  entryPoints: ['src/cli.ts'],
  tsconfig: 'tsconfig.build.json',
  outdir: 'dist/bundle',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  // The SDK's ES modules, where a package has them: esbuild can then leave out what is never
  // imported (most of the EC2 client's commands and their schemas), which the CommonJS build,
  // one module per client, does not allow.
  mainFields: ['module', 'main'],
  target: 'node20',
  sourcemap: true,
  logLevel: 'warning',
  // Some SDK dependencies are CommonJS and call require() for Node's own modules.
  banner: {
    js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
  },
});
