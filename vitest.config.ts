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
    // Files and the tests within each run in a random order, its seed printed at the start
    // ("Running tests with seed N"; replay with --sequence.seed=N): no test may lean on another
    // having run first. CI runs the unit and e2e tiers this way three times (Node 22, 24, 20).
    sequence: { shuffle: true },
    // The tool's retry back-off, scaled down (src/retry.ts): fault tests never sleep through the real one.
    env: { EC2_BPIPE_BACKOFF_SCALE: '0.01' },
  },
});
