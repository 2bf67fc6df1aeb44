/** The words a shell completes: each command's long options, and the values of options that take a fixed set. */
export interface CompletionSpec {
  commands: { name: string; options: string[] }[];
  /** Option to its values (`--level`: Full, Incremental, Differential). */
  choices: Record<string, string[]>;
}

export type Shell = 'bash' | 'zsh';

/** A shell word list, safe inside double quotes: the words come from our own command table. */
const words = (list: string[]): string => list.join(' ');

/**
 * One bash function serves both shells: zsh loads bash completion functions through
 * `bashcompinit`, its documented way to use them. Options complete after `-`; any other word
 * completes as a file name (streams, configs, directories).
 */
export function completionScript(shell: Shell, spec: CompletionSpec): string {
  const commandCases = spec.commands.map((c) => `    ${c.name}) opts="${words(c.options)}" ;;`).join('\n');
  const choiceCases = Object.entries(spec.choices)
    .map(
      ([option, values]) =>
        `    ${option}) COMPREPLY=($(compgen -W "${words(values)}" -- "$cur")); return ;;`,
    )
    .join('\n');
  const lines = [
    `# ec2-bpipe completion for ${shell}. Load it with: source <(ec2-bpipe completion ${shell})`,
    ...(shell === 'zsh' ? ['autoload -U +X bashcompinit && bashcompinit'] : []),
    '_ec2_bpipe() {',
    '  local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" opts=""',
    '  if [ "$COMP_CWORD" -eq 1 ]; then',
    `    COMPREPLY=($(compgen -W "${words(spec.commands.map((c) => c.name))} --help --version" -- "$cur"))`,
    '    return',
    '  fi',
    '  case "$prev" in',
    choiceCases,
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
