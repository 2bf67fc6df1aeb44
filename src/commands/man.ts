/**
 * `ec2-bpipe man`: the manual page in roff (man(7)), made from the same command table as --help
 * and the completions, so that the three never disagree. `ec2-bpipe man | man -l -` reads it;
 * `ec2-bpipe man > /usr/local/share/man/man1/ec2-bpipe.1` installs it.
 */
import type { Command, Option } from 'commander';
import { VERSION } from '../version.js';

/** Text safe in roff: a backslash is doubled, a line never starts with `.` or `'`, dashes stay dashes. */
function roff(text: string): string {
  return text
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .split('\n')
    .map((line) => (/^[.']/.test(line) ? `\\&${line}` : line))
    .join('\n');
}

function optionEntry(option: Option): string[] {
  const choices = option.argChoices ? ` (${option.argChoices.join(', ')})` : '';
  const fallback =
    option.defaultValue !== undefined && typeof option.defaultValue !== 'boolean'
      ? ` Default: ${String(option.defaultValue)}.`
      : '';
  return [
    '.TP',
    `.B ${roff(option.flags)}`,
    roff(`${option.description}${choices}.${fallback}`.replace(/\.\./g, '.')),
  ];
}

const SECTIONS = (date: string): string[] => [
  '.SH EXIT STATUS',
  '.TP',
  '.B 0',
  'Success.',
  '.TP',
  '.B 1',
  roff(
    'A runtime failure: AWS refused or failed, a stream is damaged, a disk is full. The last log line says the cause first, then what was left behind.',
  ),
  '.TP',
  '.B 2',
  roff('A usage or config error: a flag, a config key, an ambiguous or unsafe request. Nothing was changed.'),
  '.SH ENVIRONMENT',
  '.TP',
  '.B AWS_PROFILE, AWS_REGION, AWS_DEFAULT_REGION',
  roff('As the AWS CLI reads them, unless the config says [aws] profile or region.'),
  '.TP',
  '.B AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_EC2, AWS_ENDPOINT_URL_EBS, AWS_ENDPOINT_URL_STS',
  roff('Endpoints of the home Region (VPC endpoints), as [aws] ec2-endpoint-url and its siblings.'),
  '.TP',
  '.B AWS_CA_BUNDLE, HTTPS_PROXY, NO_PROXY',
  roff('A certificate authority bundle, and the proxy each request goes through.'),
  '.SH FILES',
  '.TP',
  '.I /etc/ec2-bpipe/<name>.ini',
  roff(
    'A config file; its name keys the snapshot tags and the Bacula catalog paths. See examples/ec2-bpipe.ini in the package.',
  ),
  '.TP',
  '.I <state-dir>',
  roff('[bacula] state-dir: job locks, the list log, restore journals.'),
  '.SH SEE ALSO',
  roff('bconsole(8), bacula-fd(8); the README and docs/ of the package (DESIGN.md, FORMAT.md, JSON.md).'),
  `.\\" made by ec2-bpipe ${VERSION} on ${date}`,
];

export function manPage(program: Command, date = new Date().toISOString().slice(0, 10)): string {
  const lines = [
    `.TH EC2\\-BPIPE 1 ${date} "ec2\\-bpipe ${VERSION}" "User Commands"`,
    '.SH NAME',
    `ec2\\-bpipe \\- ${roff(program.description())}`,
    '.SH SYNOPSIS',
    '.B ec2\\-bpipe',
    '.I command',
    '[\\fIoptions\\fR] [\\fIfiles\\fR...]',
    '.SH DESCRIPTION',
    roff(
      'Under Bacula, list is the FileSet generator (Plugin = "\\|ec2-bpipe list ..."), backup the bpipe reader and restore the bpipe writer. By hand and from cron, backup writes a tar stream to stdout, restore reads streams back to AWS or to raw images, verify checks them without AWS. Logs go to stderr, data to stdout.',
    ),
    '.SH COMMANDS',
  ];
  for (const command of program.commands) {
    if (command.name() === 'man') continue;
    const args = command.registeredArguments.map((a) => (a.required ? `<${a.name()}>` : `[${a.name()}...]`));
    lines.push(
      `.SS "${roff(['ec2-bpipe', command.name(), ...args].join(' '))}"`,
      roff(command.description()),
    );
    for (const option of command.options.filter((o) => !o.hidden)) lines.push(...optionEntry(option));
  }
  lines.push(...SECTIONS(date));
  return `${lines.join('\n')}\n`;
}
