import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'emulator/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // End-to-end files start their own emulator and spawn the CLI; two at a time suits 2 cores.
    maxWorkers: 2,
    reporters: ['default'],
    // The tool's retry back-off, scaled down (src/retry.ts): fault tests never sleep through the real one.
    env: { EC2_BPIPE_BACKOFF_SCALE: '0.01' },
  },
});
