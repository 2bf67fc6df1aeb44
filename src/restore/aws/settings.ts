/**
 * What a launch does with each setting of the source instance, for the plan (`--dry-run`, and
 * `--dry-run --json`) and the log: kept as it was, set by an option, adapted to the target (and
 * why), or lost (and why).
 */
export type Outcome = 'kept' | 'set' | 'adapted' | 'lost';

export interface SettingLine {
  setting: string;
  value: string;
  outcome: Outcome;
  /** Why a setting was adapted or lost; for a set one, the option that set it. */
  why?: string;
}

/** Where a restore setting came from, for messages: the flag, the config file, or the source. */
export function origin(given: ReadonlyMap<string, string>, key: string, source: string): string {
  const where = given.get(`restore.${key}`);
  if (where === undefined) return `stored with ${source}`;
  return where.startsWith('--') ? where : `[restore] ${key} in ${where}`;
}

export function line(setting: string, value: string, outcome: Outcome, why?: string): SettingLine {
  return { setting, value, outcome, ...(why !== undefined && { why }) };
}

export function describeLine(l: SettingLine): string {
  return `${l.outcome}: ${l.setting} ${l.value}${l.why !== undefined ? ` (${l.why})` : ''}`;
}
