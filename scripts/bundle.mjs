/**
 * `npm run build`, second step: bundles the compiled CLI (dist/src) into dist/bundle, one file
 * per command plus shared chunks. Node then reads a few files instead of resolving and loading
 * several hundred modules of the AWS SDK one by one: `ec2-bpipe list`, run at every Bacula job
 * start, went from about 0.39 s to 0.27 s, and to 0.20 s once bundled from the SDK's ES modules
 * (docs/PERFORMANCE.md). The commands stay lazily loaded (cli.ts imports each on use), so `list`
 * still loads no restore code.
 */
import { rmSync } from 'node:fs';
import { build } from 'esbuild';

// Chunks are named by content: the chunks of an earlier build would otherwise stay beside the new.
rmSync('dist/bundle', { recursive: true, force: true });

await build({
  entryPoints: ['dist/src/cli.js'],
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
