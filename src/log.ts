import pino, { type Logger } from 'pino';
import { liveDisplay } from './display.js';
import { type LineSink, PacedLines, startedByBacula } from './job-log.js';

export type LogFormat = 'human' | 'json';
export interface LogOptions {
  format?: LogFormat;
  level?: string;
  /** When set, log lines go to this file instead of stderr (used by `list`, whose stderr Bacula reads). */
  file?: string;
}

// Key names that can hold a secret, wherever they appear in a log object.
const SECRET_KEYS = [
  'secretAccessKey',
  'sessionToken',
  'SecretAccessKey',
  'SessionToken',
  'secret-access-key',
];
const REDACT_PATHS = SECRET_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`]);

/**
 * Fields of a record that its message already says in words: under --log-format=json they are
 * there for scripts (docs/JSON.md); a human line leaves them out.
 */
export const LOG_FIELDS = [
  'event',
  'command',
  'job',
  'unit',
  'jobLevel',
  'volume',
  'volumes',
  'blocks',
  'bytes',
  'seconds',
  'mibps',
  'throttledPercent',
  'total',
  'snapshot',
  'streams',
  'results',
  'to',
] as const;
const OMIT = new Set<string>(['level', 'time', 'msg', 'pid', 'hostname', ...LOG_FIELDS]);

/** One short line per record: Bacula shows each stderr line of a reader in the job log. */
export function formatHuman(record: Record<string, unknown>): string {
  const level = typeof record.level === 'string' ? record.level : 'info';
  const prefix = level === 'info' ? '' : `${level}: `;
  const fields = Object.entries(record)
    .filter(([k]) => !OMIT.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return `${prefix}${typeof record.msg === 'string' ? record.msg : ''}${fields.length ? ` (${fields.join(' ')})` : ''}\n`;
}

let paced: PacedLines | undefined;

/**
 * Where stderr lines go: straight to fd 2, or, under a Bacula File Daemon, one line at a time so
 * that each becomes its own prefixed job message (src/job-log.ts). The queue is written out when
 * the process exits, however it exits.
 */
function stderrSink(destination: LineSink): LineSink {
  if (!startedByBacula()) return destination;
  if (paced === undefined) {
    const sink = new PacedLines(destination);
    process.once('exit', () => sink.flushSync());
    paced = sink;
  }
  return paced;
}

export function createLogger(options: LogOptions = {}): Logger {
  const file = pino.destination({ dest: options.file ?? 2, sync: true, mkdir: Boolean(options.file) });
  const destination = options.file === undefined ? stderrSink(file) : file;
  const stream =
    options.format === 'json'
      ? destination
      : {
          write(line: string): void {
            const text = formatHuman(JSON.parse(line) as Record<string, unknown>);
            // On a terminal with a live progress display, the line goes above the display.
            const display = options.file === undefined ? liveDisplay() : undefined;
            if (display !== undefined) display.write(text);
            else destination.write(text);
          },
        };
  return pino(
    {
      level: options.level ?? 'info',
      base: undefined,
      // The level as a name (`"level":"warn"`), not pino's number: what log shippers read. A
      // backup's own level (Full, Incremental) is `jobLevel` in our records.
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: options.format === 'json' ? pino.stdTimeFunctions.isoTime : false,
    },
    stream,
  );
}

/**
 * Routes process warnings (the AWS SDK's NodeVersionSupportWarning, deprecations) into the logger,
 * so that nothing but our own lines ever reaches stderr.
 */
export function captureProcessWarnings(log: Logger): void {
  process.removeAllListeners('warning');
  process.on('warning', (warning: Error) => {
    log.debug({ warning: warning.name }, warning.message.split('\n')[0] ?? warning.message);
  });
}
