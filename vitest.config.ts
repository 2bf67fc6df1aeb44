import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'emulator/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // End-to-end files start their own emulator and spawn the CLI, and spend much of their time
    // waiting on both: three at a time keep 2 cores busier than two (npm test on 2 cores, the same
    // commit: 299 to 324 s with 2 workers, 270 s with 3).
    maxWorkers: 3,
    reporters: ['default'],
    // The tool's retry back-off, scaled down (src/retry.ts): fault tests never sleep through the real one.
    env: { EC2_BPIPE_BACKOFF_SCALE: '0.01' },
  },
});
