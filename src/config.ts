import { readFileSync, realpathSync, statSync } from 'node:fs';
import { basename, extname } from 'node:path';
import ini from 'ini';
import { UsageError } from './errors.js';
import { MAX_TAGS, OWN_RESTORE_TAGS, OWN_SNAPSHOT_TAGS, TAG_KEY_MAX, TAG_VALUE_MAX } from './format/tags.js';
import { CONFIG_NAME, INSTANCE_ID, VOLUME_ID } from './ids.js';

export type EndpointType = 'ipv4' | 'dualstack' | 'fips' | 'dualstack-fips';
export type Tags = Record<string, string>;

export interface AwsSettings {
  region?: string;
  profile?: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  roleArn?: string;
  externalId?: string;
  roleSessionName: string;
  sessionDuration?: number;
  endpointType: EndpointType;
  /** One URL for every service of the home Region: an emulator, a proxy that routes by service. */
  endpointUrl?: string;
  /** `[aws] ec2-endpoint-url` and its kin: one service's endpoints (src/aws/endpoints.ts). */
  ec2Endpoint?: ServiceEndpoint;
  ebsEndpoint?: ServiceEndpoint;
  stsEndpoint?: ServiceEndpoint;
  kmsEndpoint?: ServiceEndpoint;
  iamEndpoint?: ServiceEndpoint;
  /** A PEM file of certificate authorities that replaces the system's (src/aws/transport.ts). */
  caBundle?: string;
  /** A proxy for every AWS request, over HTTPS_PROXY and NO_PROXY. */
  proxy?: string;
}

/**
 * A service's endpoints as a config key gives them: a plain URL is the home Region's ([aws]
 * region), `eu-west-1=URL` another Region's.
 */
export interface ServiceEndpoint {
  url?: string;
  byRegion: Record<string, string>;
}

export interface BackupSettings {
  /** Set explicitly, the config's name; otherwise its file name gives it. */
  name?: string;
  instanceIds: string[];
  instanceTags: Tags;
  volumeIds: string[];
  volumeTags: Tags;
  excludeDataVolumeIds: string[];
  workers: number;
  /** Fewer workers in flight while AWS throttles, back up to `workers` when it stops. */
  adaptWorkers: boolean;
  snapshotDescription?: string;
  snapshotTags: Tags;
  copyVolumeTags: boolean;
  keepSnapshots: number;
  /** Seconds to wait for snapshots to complete. */
  snapshotTimeout: number;
  /** Run with /bin/sh just before the snapshots are taken, and right after (docs/DESIGN.md). */
  preSnapshotCommand?: string;
  postSnapshotCommand?: string;
  /** Seconds a hook may run. */
  hookTimeout: number;
  /** DR copies: each complete stream's snapshots are copied to this Region (docs/DESIGN.md §4). */
  copyToRegion?: string;
  /** The KMS key (an ARN in copy-to-region) the copies are encrypted with. */
  copyKmsKeyId?: string;
}

export interface RestoreSettings {
  workers: number;
  adaptWorkers: boolean;
  region?: string;
  instanceType?: string;
  subnetId?: string;
  securityGroupIds: string[];
  keyName?: string;
  placementGroup?: string;
  partitionNumber?: number;
  kmsKeyId?: string;
  keepImage: boolean;
  tags: Tags;
  /** The instance profile to launch with: an ARN, a name, or `none`; the stored one when unset. */
  iamInstanceProfile?: string;
  /** Launch with the stored private IPv4 addresses, refused before any write when they are not free. */
  keepPrivateIp: boolean;
  /**
   * Register the image with ENA whatever the source had: the operator asserts its OS has the ENA
   * driver, so that a type that requires ENA can run it.
   */
  enaSupport?: boolean;
  /** Volume-mode streams: also create a volume from each restored snapshot. */
  createVolume: boolean;
  availabilityZone?: string;
  /** Where a restore test (restore --test) launches instead of subnet-id; its Region's. */
  testSubnetId?: string;
  /** The security groups of a restore test instead of security-group-ids. */
  testSecurityGroupIds?: string[];
  /**
   * `auto`: a stream whose snapshots AWS still holds, complete and tagged for this config, job and
   * volume, is restored from them (the stream is still read and verified); `never`: every block
   * is written from the stream.
   */
  fromSnapshots: 'auto' | 'never';
}

export interface BaculaSettings {
  stateDir: string;
  logFile?: string;
  allowEmpty: boolean;
}

export interface Config {
  /** Path of the INI file, when one was read. */
  file?: string;
  /**
   * The config's name: [backup] name, else the file name without extension. It keys snapshot
   * tags, chains, retention and catalog paths.
   */
  name: string;
  /** The config file's real path, tagged on every snapshot so two files of one name cannot share chains. */
  path?: string;
  aws: AwsSettings;
  backup: BackupSettings;
  restore: RestoreSettings;
  bacula: BaculaSettings;
  /**
   * The keys set by the config file or a flag, `section.key` to where (the file, or the flag): a
   * restore refuses a flag that cannot apply, and says an INI key it does not use.
   */
  given: Map<string, string>;
}

export type SectionName = 'aws' | 'backup' | 'restore' | 'bacula';

/** Each section's settings, as a key of the INI file fills them. */
type Sections = Pick<Config, SectionName>;

/** How a key's text becomes its value, and what the key expects (said in an error). */
interface Parser<T> {
  parse: (raw: string) => T;
  expects: string;
}

/**
 * One key of a section: sets its property from the text. Built by `keysOf`, which checks at
 * compile time that the parser gives the property's type, so a key cannot fill a property with
 * a value of another type.
 */
interface KeySpec<S> {
  set: (settings: S, raw: string) => void;
  expects: string;
  /** Never shown in a message: a secret key, or a proxy URL that may hold a password. */
  secret: boolean;
}

function keysOf<S>() {
  return <P extends keyof S>(
    prop: P,
    parser: Parser<Exclude<S[P], undefined>>,
    { secret = false }: { secret?: boolean } = {},
  ): KeySpec<S> => ({
    expects: parser.expects,
    secret,
    set: (settings, raw) => {
      settings[prop] = parser.parse(raw);
    },
  });
}

/** A value whose parser names the item that is wrong (`"x" is not an instance id`). */
class BadItem extends Error {}

const text: Parser<string> = {
  parse: (raw) => {
    if (raw === '') throw new Error('empty');
    return raw;
  },
  expects: 'a non-empty value',
};

function int(min: number, max: number): Parser<number> {
  return {
    parse: (raw) => {
      if (!/^\d+$/.test(raw)) throw new Error('not a whole number');
      const n = Number(raw);
      if (n < min || n > max) throw new Error('out of range');
      return n;
    },
    expects: `a whole number from ${min} to ${max}`,
  };
}

const bool: Parser<boolean> = {
  parse: (raw) => {
    const v = raw.toLowerCase();
    if (['yes', 'true', '1', 'on'].includes(v)) return true;
    if (['no', 'false', '0', 'off'].includes(v)) return false;
    throw new Error('not a boolean');
  },
  expects: 'yes or no',
};

function list(pattern: RegExp, what: string): Parser<string[]> {
  return {
    parse: (raw) => {
      const items = raw
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');
      const bad = items.find((s) => !pattern.test(s));
      if (bad !== undefined) throw new BadItem(`"${bad}" is not ${what}`);
      return items;
    },
    expects: `a comma-separated list of ${what}s`,
  };
}

const tags: Parser<Tags> = {
  parse: (raw) => parseTags(raw),
  expects: 'Key=Value pairs separated by commas',
};

function oneOf<T extends string>(values: readonly T[]): Parser<T> {
  return {
    parse: (raw) => {
      const value = values.find((v) => v === raw);
      if (value === undefined) throw new Error('unknown value');
      return value;
    },
    expects: `one of ${values.join(', ')}`,
  };
}

/** Text of a given form: `expects` says the form. */
function matching(pattern: RegExp, expects: string): Parser<string> {
  return {
    parse: (raw) => {
      if (!pattern.test(raw)) throw new Error('bad form');
      return raw;
    },
    expects,
  };
}

/** A restore's subnet (subnet-id, test-subnet-id). */
const subnetId = matching(/^subnet-[0-9a-f]{8,17}$/, 'a subnet id (subnet-...)');

/** A restore's security groups (security-group-ids, test-security-group-ids). */
const securityGroupIds = list(/^sg-[0-9a-f]{8,17}$/, 'security group id (sg-...)');

const url: Parser<string> = {
  parse: (raw) => {
    const u = new URL(raw);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http(s)');
    return raw;
  },
  expects: 'an http:// or https:// URL',
};

const REGION_NAME = /^[a-z]{2}(-[a-z]+)+-\d+$/;

/** `URL` (the home Region's) and `region=URL` items, comma-separated. */
const serviceEndpoint: Parser<ServiceEndpoint> = {
  parse: (raw) => {
    const endpoint: ServiceEndpoint = { byRegion: {} };
    for (const item of raw
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '')) {
      const qualified = /^([a-z0-9-]+)=(.+)$/.exec(item);
      const target = qualified?.[2] ?? item;
      const parsed = url.parse(target);
      if (qualified === null) {
        if (endpoint.url !== undefined)
          throw new BadItem(`two URLs without a Region: qualify one as REGION=${item}`);
        endpoint.url = parsed;
        continue;
      }
      const name = qualified[1] ?? '';
      if (!REGION_NAME.test(name)) throw new BadItem(`"${name}" is not a Region name`);
      endpoint.byRegion[name] = parsed;
    }
    return endpoint;
  },
  expects: "an http(s) URL for [aws] region's endpoint, and REGION=URL for another Region's, comma-separated",
};

const region = matching(REGION_NAME, 'an AWS region name such as eu-west-1');
const kmsKeyArn = matching(
  /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[\w-]+$/,
  'a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), as the EBS direct APIs take it',
);
const instanceIds = list(INSTANCE_ID, 'instance id (i-...)');
const volumeIds = list(VOLUME_ID, 'volume id (vol-...)');

const awsKey = keysOf<AwsSettings>();
const backupKey = keysOf<BackupSettings>();
const restoreKey = keysOf<RestoreSettings>();
const baculaKey = keysOf<BaculaSettings>();

/** Every key of every section: the INI file's and the flags' one definition. */
const SCHEMA = {
  aws: {
    region: awsKey('region', region),
    profile: awsKey('profile', text),
    // IAM AccessKey: 16 to 128 word characters (the IAM API reference, AccessKey data type).
    'access-key-id': awsKey('accessKeyId', matching(/^\w{16,128}$/, 'an AWS access key id')),
    'secret-access-key': awsKey('secretAccessKey', text, { secret: true }),
    'role-arn': awsKey(
      'roleArn',
      matching(
        /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]+$/,
        'an IAM role ARN such as arn:aws:iam::123456789012:role/backup',
      ),
    ),
    'external-id': awsKey('externalId', text, { secret: true }),
    'role-session-name': awsKey(
      'roleSessionName',
      matching(/^[\w+=,.@-]{2,64}$/, '2 to 64 characters of letters, digits and +=,.@_-'),
    ),
    'session-duration': awsKey('sessionDuration', int(900, 43200)),
    'endpoint-type': awsKey('endpointType', oneOf(['ipv4', 'dualstack', 'fips', 'dualstack-fips'] as const)),
    'endpoint-url': awsKey('endpointUrl', url),
    'ec2-endpoint-url': awsKey('ec2Endpoint', serviceEndpoint),
    'ebs-endpoint-url': awsKey('ebsEndpoint', serviceEndpoint),
    'sts-endpoint-url': awsKey('stsEndpoint', serviceEndpoint),
    'kms-endpoint-url': awsKey('kmsEndpoint', serviceEndpoint),
    'iam-endpoint-url': awsKey('iamEndpoint', serviceEndpoint),
    'ca-bundle': awsKey('caBundle', text),
    // A proxy URL may carry a password: never shown in a message.
    proxy: awsKey('proxy', url, { secret: true }),
  },
  backup: {
    name: backupKey(
      'name',
      matching(
        CONFIG_NAME,
        'a name of letters, digits, ".", "_" and "-" (at most 64), unique among your configs',
      ),
    ),
    'instance-ids': backupKey('instanceIds', instanceIds),
    'instance-tags': backupKey('instanceTags', tags),
    'volume-ids': backupKey('volumeIds', volumeIds),
    'volume-tags': backupKey('volumeTags', tags),
    'exclude-data-volume-ids': backupKey('excludeDataVolumeIds', volumeIds),
    workers: backupKey('workers', int(1, 256)),
    'adapt-workers': backupKey('adaptWorkers', bool),
    'snapshot-description': backupKey('snapshotDescription', text),
    'snapshot-tags': backupKey('snapshotTags', tags),
    'copy-volume-tags': backupKey('copyVolumeTags', bool),
    'keep-snapshots': backupKey('keepSnapshots', int(1, 1000)),
    'snapshot-timeout': backupKey('snapshotTimeout', int(60, 7 * 86400)),
    'pre-snapshot-command': backupKey('preSnapshotCommand', text),
    'post-snapshot-command': backupKey('postSnapshotCommand', text),
    'hook-timeout': backupKey('hookTimeout', int(1, 86400)),
    'copy-to-region': backupKey('copyToRegion', region),
    'copy-kms-key-id': backupKey('copyKmsKeyId', kmsKeyArn),
  },
  restore: {
    workers: restoreKey('workers', int(1, 256)),
    'adapt-workers': restoreKey('adaptWorkers', bool),
    region: restoreKey('region', region),
    'instance-type': restoreKey(
      'instanceType',
      matching(/^[a-z0-9-]+\.[a-z0-9-]+$/, 'an instance type such as m5.large'),
    ),
    'subnet-id': restoreKey('subnetId', subnetId),
    'security-group-ids': restoreKey('securityGroupIds', securityGroupIds),
    'key-name': restoreKey('keyName', text),
    'placement-group': restoreKey('placementGroup', text),
    'partition-number': restoreKey('partitionNumber', int(1, 7)),
    'kms-key-id': restoreKey('kmsKeyId', kmsKeyArn),
    'create-volume': restoreKey('createVolume', bool),
    'availability-zone': restoreKey(
      'availabilityZone',
      matching(/^[a-z]{2}(-[a-z]+)+-\d+[a-z]$/, 'an availability zone such as eu-west-1a'),
    ),
    'keep-image': restoreKey('keepImage', bool),
    tags: restoreKey('tags', tags),
    'iam-instance-profile': restoreKey(
      'iamInstanceProfile',
      matching(
        /^(none|[\w+=,.@-]{1,128}|arn:aws[a-z-]*:iam::\d{12}:instance-profile\/[\w+=,.@/-]{1,512})$/,
        'an instance profile ARN, a name, or none',
      ),
    ),
    'keep-private-ip': restoreKey('keepPrivateIp', bool),
    'ena-support': restoreKey('enaSupport', bool),
    'from-snapshots': restoreKey('fromSnapshots', oneOf(['auto', 'never'] as const)),
    'test-subnet-id': restoreKey('testSubnetId', subnetId),
    'test-security-group-ids': restoreKey('testSecurityGroupIds', securityGroupIds),
  },
  bacula: {
    'state-dir': baculaKey('stateDir', matching(/^\//, 'an absolute directory path')),
    'log-file': baculaKey('logFile', matching(/^\//, 'an absolute file path')),
    'allow-empty': baculaKey('allowEmpty', bool),
  },
} satisfies { [K in SectionName]: Record<string, KeySpec<Sections[K]>> };

const SECTIONS: readonly SectionName[] = ['aws', 'backup', 'restore', 'bacula'];

/** The same table, seen per section: what a section's keys set is that section's settings. */
const KEYS: { [K in SectionName]: Record<string, KeySpec<Sections[K]>> } = SCHEMA;

/** The keys of one section, as the type system knows them: a flag names one of these. */
export type KeyOf<K extends SectionName> = keyof (typeof SCHEMA)[K] & string;

export function defaultConfig(name = 'default'): Config {
  return {
    name,
    aws: { roleSessionName: 'ec2-bpipe', endpointType: 'ipv4' },
    backup: {
      instanceIds: [],
      instanceTags: {},
      volumeIds: [],
      volumeTags: {},
      excludeDataVolumeIds: [],
      workers: 8,
      adaptWorkers: true,
      snapshotTags: {},
      copyVolumeTags: false,
      keepSnapshots: 1,
      snapshotTimeout: 3600,
      hookTimeout: 300,
    },
    restore: {
      workers: 8,
      adaptWorkers: true,
      securityGroupIds: [],
      keepImage: false,
      tags: {},
      keepPrivateIp: false,
      createVolume: false,
      fromSnapshots: 'auto',
    },
    bacula: { stateDir: '/var/lib/ec2-bpipe', allowEmpty: false },
    given: new Map(),
  };
}

/** Parses `K=V,K2=V2`. Keys may not be empty; values may be. */
export function parseTags(raw: string): Tags {
  const out: Tags = {};
  for (const part of raw.split(',')) {
    const item = part.trim();
    if (item === '') continue;
    const eq = item.indexOf('=');
    if (eq <= 0) throw new BadItem(`"${item}" is not Key=Value`);
    const key = item.slice(0, eq).trim();
    const value = item.slice(eq + 1).trim();
    if (key.toLowerCase().startsWith('aws:'))
      throw new BadItem(`tag key "${key}" uses the reserved aws: prefix`);
    if (key.length > TAG_KEY_MAX)
      throw new BadItem(
        `tag key "${key.slice(0, 20)}…" is ${key.length} characters; AWS takes ${TAG_KEY_MAX}`,
      );
    if (value.length > TAG_VALUE_MAX)
      throw new BadItem(`the value of tag ${key} is ${value.length} characters; AWS takes ${TAG_VALUE_MAX}`);
    out[key] = value;
  }
  return out;
}

/** Levenshtein distance, for "did you mean" suggestions: one row of the table at a time. */
function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (row[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      next.push(Math.min((row[j] ?? 0) + 1, (next[j - 1] ?? 0) + 1, substitution));
    }
    row = next;
  }
  return row[b.length] ?? 0;
}

export function suggestion(word: string, candidates: string[]): string {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = distance(word, c);
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(word.length / 3))
    ? ` Did you mean "${best}"?`
    : '';
}

/**
 * Sets one key from its textual value, validated as the INI file would be.
 * `where` names the origin for error messages: the file and section, or a command-line flag.
 */
export function setKey(config: Config, section: SectionName, key: string, raw: string, where: string): void {
  setIn(config, section, key, raw, where);
}

/** setKey, generic over the section so that the key's setter and the settings it fills agree. */
function setIn<K extends SectionName>(
  config: Config,
  section: K,
  key: string,
  raw: string,
  where: string,
): void {
  const specs = KEYS[section];
  // Own keys only: `constructor` or `__proto__` must not reach Object's own members.
  const spec = Object.hasOwn(specs, key) ? specs[key] : undefined;
  if (!spec) {
    throw new UsageError(
      `${where}: unknown key "${key}" in [${section}].${suggestion(key, Object.keys(specs))} ` +
        `Known keys: ${Object.keys(specs).join(', ')}.`,
    );
  }
  const settings: Sections[K] = config[section];
  try {
    spec.set(settings, raw.trim());
  } catch (err) {
    const shown = spec.secret ? '(hidden)' : `"${raw}"`;
    // Only an error that names the bad item says more than `expects` does (and never a secret's).
    const reason = err instanceof BadItem && !spec.secret ? ` (${err.message})` : '';
    throw new UsageError(
      `${where}: [${section}] ${key} = ${shown} is invalid${reason}: expected ${spec.expects}.`,
    );
  }
  config.given.set(`${section}.${key}`, where);
}

export function knownKeys(section: SectionName): string[] {
  return Object.keys(SCHEMA[section]);
}

function checkPermissions(file: string, hasSecret: boolean): void {
  if (!hasSecret) return;
  const mode = statSync(file).mode & 0o777;
  if (mode & 0o077) {
    throw new UsageError(
      `${file}: holds [aws] secret-access-key but is readable by group or others (mode ${mode.toString(8)}). ` +
        `Run: chmod 600 ${file}`,
    );
  }
}

/** Keys whose value is a shell command: a `;` or `#` in one is meant, never a comment. */
const COMMAND_KEYS = new Set(['pre-snapshot-command', 'post-snapshot-command']);

/**
 * What the INI parser would take silently, and a config must not: a section or key given twice
 * (the later would win unseen), a key before any section, a key that is an object's own member,
 * and a command the parser would cut at a `;` or `#` it takes for a comment. Lines are read as
 * `ini` reads them (a header alone on its line; `key = value`; `;` and `#` lines are comments);
 * each refusal names the line or lines.
 */
function refuseAmbiguity(text: string, file: string): void {
  const sectionLine = new Map<string, number>();
  const keyLine = new Map<string, number>();
  let section: string | undefined;
  for (const [i, line] of text.split(/\r\n|\r|\n/).entries()) {
    const n = i + 1;
    if (/^\s*$/.test(line) || /^\s*[;#]/.test(line)) continue;
    const header = /^\[([^\]]*)\]\s*$/.exec(line);
    if (header !== null) {
      const name = (header[1] ?? '').trim();
      const first = sectionLine.get(name);
      if (first !== undefined) {
        throw new UsageError(
          `${file}: section [${name}] at lines ${first} and ${n}: give each section once, with all its keys.`,
        );
      }
      sectionLine.set(name, n);
      section = name;
      continue;
    }
    const eq = line.indexOf('=');
    const key = (eq === -1 ? line : line.slice(0, eq)).trim();
    if (section === undefined) {
      throw new UsageError(
        `${file}: line ${n}: key "${key}" is outside any section. Put it under [aws], [backup], [restore] or [bacula].`,
      );
    }
    if (/^(__proto__|constructor|prototype)$/.test(key) || key.endsWith('[]')) {
      throw new UsageError(`${file}: line ${n}: "${key}" in [${section}] is no config key.`);
    }
    const first = keyLine.get(`${section}\n${key}`);
    if (first !== undefined) {
      throw new UsageError(
        `${file}: [${section}] ${key} at lines ${first} and ${n}: give each key once (the later would silently win).`,
      );
    }
    keyLine.set(`${section}\n${key}`, n);
    const value = eq === -1 ? '' : line.slice(eq + 1).trim();
    const quoted = /^(".*"|'.*')$/.test(value);
    if (COMMAND_KEYS.has(key) && !quoted && /(^|[^\\])[;#]/.test(value)) {
      throw new UsageError(
        `${file}: line ${n}: [${section}] ${key} holds ";" or "#", where an INI value starts a comment: the ` +
          `command would be cut there. Quote the whole value ('...' or "...") or write \\; and \\# instead.`,
      );
    }
  }
}

export function loadConfig(file: string): Config {
  let textContent: string;
  try {
    textContent = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(`${file}: cannot read the config file (${code ?? String(err)}). Check --config.`);
  }
  const config = defaultConfig(basename(file, extname(file)));
  config.file = file;
  config.path = realpathSync(file);
  refuseAmbiguity(textContent, file);
  const parsed = ini.parse(textContent) as Record<string, unknown>;
  let hasSecret = false;
  for (const [sectionName, body] of Object.entries(parsed)) {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new UsageError(
        `${file}: key "${sectionName}" is outside any section. Put it under [aws], [backup], [restore] or [bacula].`,
      );
    }
    const section = SECTIONS.find((name) => name === sectionName);
    if (section === undefined) {
      throw new UsageError(
        `${file}: unknown section [${sectionName}].${suggestion(sectionName, Object.keys(SCHEMA))} ` +
          `Known sections: [aws], [backup], [restore], [bacula].`,
      );
    }
    for (const [key, value] of Object.entries(body)) {
      if (typeof value === 'object' && value !== null) {
        throw new UsageError(
          `${file}: [${section}] ${key} is given as a nested section or a list; give it once as key = value.`,
        );
      }
      // `ini` turns true/false into booleans; the schema parses text.
      const raw = String(value);
      if (key === 'secret-access-key') hasSecret = true;
      setKey(config, section, key, raw, `${file}`);
    }
  }
  checkPermissions(file, hasSecret);
  if (config.backup.name !== undefined) config.name = config.backup.name;
  else if (!CONFIG_NAME.test(config.name)) {
    throw new UsageError(
      `${file}: the config name "${config.name}" (the file name) may hold only letters, digits, ".", "_" and "-" (at most 64). Rename the file or set [backup] name.`,
    );
  }
  validate(config, file);
  return config;
}

/** Cross-key rules: what one key needs from another. */
export function validate(config: Config, where: string): void {
  const { aws } = config;
  if ((aws.accessKeyId === undefined) !== (aws.secretAccessKey === undefined)) {
    throw new UsageError(
      `${where}: [aws] access-key-id and secret-access-key go together; set both or neither.`,
    );
  }
  if (aws.accessKeyId !== undefined && aws.profile !== undefined) {
    throw new UsageError(
      `${where}: [aws] profile and access-key-id both name credentials; keep one of them.`,
    );
  }
  if ((aws.externalId !== undefined || aws.sessionDuration !== undefined) && aws.roleArn === undefined) {
    throw new UsageError(`${where}: [aws] external-id and session-duration need role-arn.`);
  }
  const { copyToRegion, copyKmsKeyId } = config.backup;
  if (copyKmsKeyId !== undefined && copyToRegion === undefined) {
    throw new UsageError(`${where}: [backup] copy-kms-key-id needs copy-to-region.`);
  }
  if (copyKmsKeyId !== undefined && copyKmsKeyId.split(':')[3] !== copyToRegion) {
    throw new UsageError(
      `${where}: [backup] copy-kms-key-id ${copyKmsKeyId} is a key of another Region than copy-to-region ${copyToRegion}; a copy is encrypted with a key of its own Region.`,
    );
  }
  if (copyToRegion !== undefined && copyToRegion === aws.region) {
    throw new UsageError(
      `${where}: [backup] copy-to-region is [aws] region (${copyToRegion}): a DR copy goes to another Region.`,
    );
  }
  // A resource takes 50 tags, and ec2-bpipe's own come first (src/format/tags.ts): a request with
  // more would be refused by AWS in the middle of a job.
  const tagRoom: [string, number, number][] = [
    ['[backup] snapshot-tags', Object.keys(config.backup.snapshotTags).length, MAX_TAGS - OWN_SNAPSHOT_TAGS],
    ['[restore] tags', Object.keys(config.restore.tags).length, MAX_TAGS - OWN_RESTORE_TAGS],
  ];
  for (const [key, count, room] of tagRoom) {
    if (count > room) {
      throw new UsageError(
        `${where}: ${key} has ${count} tags; at most ${room} fit beside ec2-bpipe's own on a resource of 50 tags.`,
      );
    }
  }
  if (config.restore.partitionNumber !== undefined && config.restore.placementGroup === undefined) {
    throw new UsageError(`${where}: [restore] partition-number needs placement-group.`);
  }
}
