import type { Logger } from 'pino';
import type { Config } from '../config.js';

/** What every command gets from the CLI wiring: the validated config, the logger and the process streams. */
export interface CommandContext {
  config: Config;
  log: Logger;
  stdout: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
}

/** The unit a command works on, from --instance or --volume; else the config's selection. */
export type { UnitFlags as UnitOptions } from '../selection.js';
