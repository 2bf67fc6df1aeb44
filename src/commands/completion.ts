/** One long option as a shell completes it. */
export interface CompletedOption {
  /** `--level`. */
  flag: string;
  /** Takes a value (`--config <file>`): the next word is that value, not an option. */
  takesValue: boolean;
  description: string;
}

/** The words a shell completes: each command's long options, and the values of options that take a fixed set. */
export interface CompletionSpec {
  commands: { name: string; description: string; options: CompletedOption[] }[];
  /** Option to its values (`--level`: Full, Incremental, Differential). */
  choices: Record<string, string[]>;
}

export type Shell = 'bash' | 'zsh' | 'fish';
export const SHELLS: Shell[] = ['bash', 'zsh', 'fish'];

/** A shell word list, safe inside double quotes: the words come from our own command table. */
const words = (list: string[]): string => list.join(' ');

/**
 * One bash function serves bash and zsh: zsh loads bash completion functions through
 * `bashcompinit`, its documented way to use them. Options complete after `-`, the values of a
 * fixed-choice option after it (`--level F`, `--level=F`); any other word as a file name.
 */
function bashScript(shell: 'bash' | 'zsh', spec: CompletionSpec): string {
  const commandCases = spec.commands
    .map((c) => `    ${c.name}) opts="${words([...c.options.map((o) => o.flag), '--help'])}" ;;`)
    .join('\n');
  const choiceCases = Object.entries(spec.choices)
    .map(([option, values]) => `    ${option}) values="${words(values)}" ;;`)
    .join('\n');
  const lines = [
    `# ec2-bpipe completion for ${shell}. Load it with: source <(ec2-bpipe completion ${shell})`,
    ...(shell === 'zsh' ? ['autoload -U +X bashcompinit && bashcompinit'] : []),
    '_ec2_bpipe_values() {',
    '  local values=""',
    '  case "$1" in',
    choiceCases,
    '  esac',
    '  printf "%s" "$values"',
    '}',
    '_ec2_bpipe() {',
    '  local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" opts="" option="" values=""',
    '  if [ "$COMP_CWORD" -eq 1 ]; then',
    `    COMPREPLY=($(compgen -W "${words(spec.commands.map((c) => c.name))} --help --version" -- "$cur"))`,
    '    return',
    '  fi',
    // bash splits `--level=F` at `=` (COMP_WORDBREAKS): the words are `--level`, `=`, `F`.
    '  if [ "$cur" = "=" ]; then option="$prev"; cur=""',
    '  elif [ "$prev" = "=" ] && [ "$COMP_CWORD" -ge 2 ]; then option="${COMP_WORDS[COMP_CWORD-2]}"',
    '  else option="$prev"; fi',
    '  values="$(_ec2_bpipe_values "$option")"',
    '  if [ -n "$values" ]; then COMPREPLY=($(compgen -W "$values" -- "$cur")); return; fi',
    // Where `=` is no word break (zsh), the word is `--level=F` whole.
    '  case "$cur" in',
    '    --*=*)',
    '      values="$(_ec2_bpipe_values "${cur%%=*}")"',
    '      if [ -n "$values" ]; then COMPREPLY=($(compgen -P "${cur%%=*}=" -W "$values" -- "${cur#*=}")); return; fi ;;',
    '  esac',
    '  case "${COMP_WORDS[1]}" in',
    commandCases,
    '  esac',
    '  case "$cur" in',
    '    -*) COMPREPLY=($(compgen -W "$opts" -- "$cur")) ;;',
    '    *) COMPREPLY=($(compgen -f -- "$cur")) ;;',
    '  esac',
    '}',
    'complete -o filenames -F _ec2_bpipe ec2-bpipe',
  ];
  return `${lines.join('\n')}\n`;
}

/** A description inside fish's single quotes: ours hold no quote, but one is escaped all the same. */
const fishQuoted = (text: string): string => `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/**
 * fish's own completions: `complete -c` per command and option. fish completes `--level=<TAB>`
 * and `--level <TAB>` itself from `-a`; options without fixed values take file names.
 */
function fishScript(spec: CompletionSpec): string {
  const names = words(spec.commands.map((c) => c.name));
  const lines = [
    '# ec2-bpipe completion for fish. Load it with: ec2-bpipe completion fish | source',
    '# (or save it as ~/.config/fish/completions/ec2-bpipe.fish)',
    'complete -c ec2-bpipe -e',
    `complete -c ec2-bpipe -n 'not __fish_seen_subcommand_from ${names}' -f -l help -d 'show the help'`,
    `complete -c ec2-bpipe -n 'not __fish_seen_subcommand_from ${names}' -f -l version -d 'show the version'`,
  ];
  for (const command of spec.commands) {
    lines.push(
      `complete -c ec2-bpipe -n 'not __fish_seen_subcommand_from ${names}' -f -a ${command.name} -d ${fishQuoted(command.description)}`,
    );
    const when = `-n '__fish_seen_subcommand_from ${command.name}'`;
    if (command.name === 'completion') {
      lines.push(`complete -c ec2-bpipe ${when} -f -a ${fishQuoted(words(SHELLS))}`);
      continue;
    }
    for (const option of command.options) {
      const values = spec.choices[option.flag];
      const takes =
        values !== undefined ? ` -x -a ${fishQuoted(words(values))}` : option.takesValue ? ' -r' : '';
      lines.push(
        `complete -c ec2-bpipe ${when} -l ${option.flag.slice(2)}${takes} -d ${fishQuoted(option.description)}`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

export function completionScript(shell: Shell, spec: CompletionSpec): string {
  return shell === 'fish' ? fishScript(spec) : bashScript(shell, spec);
}
