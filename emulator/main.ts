import { parseArgs } from 'node:util';
import { startEmulator } from './server.js';
import type { EmulatorOptions } from './state.js';

/** `npm run emulator -- --port=N [...]`: serves EC2, EBS direct and STS on one loopback port. */
const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    'latency-ms': { type: 'string' },
    'bandwidth-mbps': { type: 'string' },
    'pending-ms': { type: 'string' },
    'start-delay-ms': { type: 'string' },
    'throttle-rate': { type: 'string' },
    'block-requests-per-second': { type: 'string' },
    'ec2-throttle-rate': { type: 'string' },
    'error-rate': { type: 'string' },
    'reset-rate': { type: 'string' },
    'corrupt-rate': { type: 'string' },
    'sts-duration-s': { type: 'string' },
    'block-token-ttl-ms': { type: 'string' },
    'page-token-ttl-ms': { type: 'string' },
    seed: { type: 'string' },
    deny: { type: 'string', multiple: true },
  },
  strict: true,
});

const numeric: [keyof typeof values, keyof EmulatorOptions][] = [
  ['latency-ms', 'latencyMs'],
  ['bandwidth-mbps', 'bandwidthMbps'],
  ['pending-ms', 'pendingMs'],
  ['start-delay-ms', 'startDelayMs'],
  ['throttle-rate', 'throttleRate'],
  ['block-requests-per-second', 'blockRequestsPerSecond'],
  ['ec2-throttle-rate', 'ec2ThrottleRate'],
  ['error-rate', 'errorRate'],
  ['reset-rate', 'resetRate'],
  ['corrupt-rate', 'corruptRate'],
  ['sts-duration-s', 'stsDurationS'],
  ['block-token-ttl-ms', 'blockTokenTtlMs'],
  ['page-token-ttl-ms', 'pageTokenTtlMs'],
  ['seed', 'seed'],
];
const options: Partial<EmulatorOptions> = {};
for (const [flag, key] of numeric) {
  const raw = values[flag];
  if (raw === undefined) continue;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) {
    process.stderr.write(`--${flag}=${String(raw)}: expected a number of 0 or more\n`);
    process.exit(2);
  }
  (options as Record<string, number>)[key] = n;
}
// --deny=ec2:CreateSnapshots (repeatable): the caller's policy lacks that action.
if (values.deny) options.deniedActions = values.deny;
const emulator = await startEmulator(options, Number(values.port));
process.stdout.write(`emulator listening on ${emulator.url}\n`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => void emulator.close().then(() => process.exit(0)));
}
