import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { identityClients } from '../aws/launch-checks.js';
import {
  type BackupSubjects,
  callerIdentity,
  type CopySubjects,
  type PermissionProbe,
  PLACEHOLDER,
  PROBES,
  type ProbeClients,
  type RestoreSubjects,
  runProbe,
  type Verdict,
} from '../aws/permissions.js';
import { type AwsClients, createClients, resolveRegion } from '../aws/clients.js';
import { endpointFor } from '../aws/endpoints.js';
import { checkKmsKey } from '../aws/kms.js';
import { type ChainLink, volumeLinks } from '../backup/links.js';
import { planUnit } from '../backup/plan.js';
import type { Config } from '../config.js';
import { describeAwsFailure } from '../aws/failure.js';
import { describeError, RuntimeFailure } from '../errors.js';
import { errorCode } from '../retry.js';
import { selectedUnits, type Unit } from '../selection.js';
import type { CommandContext } from './context.js';
import type { DoctorOptions } from './options.js';

export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip';

/** One line of the checklist: what was checked, what was found, and what to do when it failed. */
export interface Check {
  area: 'setup' | 'aws' | 'backup' | 'dr copies' | 'restore';
  name: string;
  status: CheckStatus;
  detail: string;
  fix?: string;
}

/** Where Debian's and Bacula's own packages put the file daemon's config. */
const FD_CONFS = ['/etc/bacula/bacula-fd.conf', '/opt/bacula/etc/bacula-fd.conf'];

function permission(
  area: Check['area'],
  action: string,
  purpose: string,
  probe: Verdict,
  who: string,
): Check {
  const name = `${action} (${purpose})`;
  if (probe.allowed) return { area, name, status: 'ok', detail: 'allowed' };
  if (probe.denied) {
    return {
      area,
      name,
      status: 'fail',
      detail: 'not allowed',
      fix: `grant ${action} to ${who} (examples/bacula/iam-policy.json has every statement ec2-bpipe needs)`,
    };
  }
  return { area, name, status: 'warn', detail: `could not be checked: ${probe.reason}` };
}

function nodeCheck(): Check {
  const version = process.versions.node;
  const major = Number(version.split('.')[0]);
  if (major >= 22) return { area: 'setup', name: 'Node.js', status: 'ok', detail: version };
  return {
    area: 'setup',
    name: 'Node.js',
    status: 'warn',
    detail: `${version}: Node 20 is past its end of life, and AWS SDK releases after January 2027 need Node 22`,
    fix: 'install Node 22 or 24 before updating ec2-bpipe',
  };
}

function stateDirCheck(config: Config): Check {
  const dir = config.bacula.stateDir;
  const name = `state directory ${dir}`;
  try {
    if (!statSync(dir).isDirectory()) throw new Error('not a directory');
    accessSync(dir, constants.W_OK);
    return { area: 'setup', name, status: 'ok', detail: 'writable' };
  } catch (err) {
    return {
      area: 'setup',
      name,
      status: 'fail',
      detail: `not a writable directory (${errorCode(err) ?? describeError(err)})`,
      fix: `mkdir -p ${dir} && chown bacula: ${dir} (the user bacula-fd runs as), or set [bacula] state-dir`,
    };
  }
}

/** The file daemon's Plugin Directory must hold bpipe-fd.so, or Bacula cannot run ec2-bpipe. */
function baculaCheck(given: string | undefined): Check {
  const name = 'Bacula bpipe plugin';
  const conf = given ?? FD_CONFS.find((f) => existsSync(f));
  if (conf === undefined) {
    return {
      area: 'setup',
      name,
      status: 'skip',
      detail: `no Bacula file daemon config here (${FD_CONFS.join(', ')}); fine when ec2-bpipe runs by hand or from cron`,
    };
  }
  let text: string;
  try {
    text = readFileSync(conf, 'utf8');
  } catch (err) {
    return {
      area: 'setup',
      name,
      status: 'fail',
      detail: `${conf}: cannot read it (${errorCode(err) ?? describeError(err)})`,
      fix: 'run the check as a user who can read the file daemon config, or pass --bacula-fd-conf',
    };
  }
  const dir = /^\s*Plugin\s*Directory\s*=\s*"?([^"\n#]+?)"?\s*$/im.exec(text)?.[1];
  if (dir === undefined) {
    return {
      area: 'setup',
      name,
      status: 'fail',
      detail: `${conf} sets no Plugin Directory`,
      fix: `add "Plugin Directory = /usr/lib/bacula" (where bpipe-fd.so is) to the FileDaemon resource of ${conf}, then restart bacula-fd`,
    };
  }
  const plugin = join(dir, 'bpipe-fd.so');
  if (!existsSync(plugin)) {
    return {
      area: 'setup',
      name,
      status: 'fail',
      detail: `${plugin} is missing (Plugin Directory of ${conf})`,
      fix: 'install the bpipe plugin (Debian: bacula-fd ships it in /usr/lib/bacula) or point Plugin Directory at it',
    };
  }
  return { area: 'setup', name, status: 'ok', detail: `${plugin} (${conf})` };
}

/** What the backup probes work on: the config's units, and its newest and oldest own snapshots. */
interface Subjects {
  units: Unit[];
  instanceId?: string;
  volumeId?: string;
  newest?: ChainLink;
  oldest?: ChainLink;
}

async function subjects(config: Config, clients: AwsClients, region: string): Promise<Subjects> {
  const units = await selectedUnits(config, clients.ec2);
  const found: Subjects = { units };
  for (const unit of units) {
    if (unit.kind === 'instance') found.instanceId ??= unit.instanceId;
    const plan = await planUnit(clients.ec2, config, region, unit);
    for (const volume of plan.volumes) {
      if (unit.kind === 'volumes') found.volumeId ??= volume.volumeId;
      const links = await volumeLinks(clients.ec2, config, volume.volumeId);
      const [newest] = links;
      if (newest !== undefined && found.newest === undefined) {
        found.newest = newest;
        found.oldest = links.at(-1);
      }
    }
  }
  return found;
}

/**
 * Runs one table of probes: a row that does not apply to the config is left out, one that
 * cannot be probed yet is a `skip` line saying why, the rest a verdict each.
 */
async function probeChecks<S>(
  area: Check['area'],
  table: readonly PermissionProbe<S>[],
  clients: ProbeClients,
  subjects: S,
  who: string,
  where = '',
): Promise<Check[]> {
  const checks: Check[] = [];
  for (const row of table) {
    if (row.appliesTo?.(subjects) === false) continue;
    const purpose = `${row.purpose(subjects)}${where}`;
    const notNow = 'never' in row ? row.never : row.notNow?.(subjects);
    if (notNow !== undefined || !('probe' in row)) {
      checks.push({ area, name: `${row.action} (${purpose})`, status: 'skip', detail: notNow ?? '' });
      continue;
    }
    checks.push(permission(area, row.action, purpose, await runProbe(row, clients, subjects), who));
  }
  return checks;
}

/** The backup's checks, and the snapshot of this config later probes may name (the newest). */
async function backupChecks(
  config: Config,
  clients: AwsClients,
  probeClients: ProbeClients,
  region: string,
  who: string,
): Promise<{ checks: Check[]; newest?: string }> {
  const bare: BackupSubjects = { configName: config.name };
  const first = PROBES.backup.filter((p) => p.afterUnits !== true);
  const checks = await probeChecks('backup', first, probeClients, bare, who);
  let found: Subjects;
  try {
    found = await subjects(config, clients, region);
  } catch (err) {
    checks.push({
      area: 'backup',
      name: 'units of the config',
      status: 'fail',
      detail: describeAwsFailure(err) ?? describeError(err),
      fix: `fix the selection in [backup] (instance-ids, instance-tags, volume-ids, volume-tags), the Region (${region}: [aws] region), or the permissions above`,
    });
    return { checks };
  }
  checks.push({
    area: 'backup',
    name: 'units of the config',
    status: found.units.length ? 'ok' : config.bacula.allowEmpty ? 'warn' : 'fail',
    detail: found.units.length
      ? `${found.units.length} in ${region}: ${found.units.map((u) => u.resourceId).join(', ')}`
      : `nothing selected in ${region}`,
    ...(found.units.length === 0 && { fix: 'check [backup] selection keys and [aws] region' }),
  });
  const units: BackupSubjects = {
    ...bare,
    ...(found.instanceId !== undefined && { instanceId: found.instanceId }),
    ...(found.volumeId !== undefined && { volumeId: found.volumeId }),
    ...(found.newest !== undefined && { newestSnapshot: found.newest.snapshotId }),
    ...(found.oldest !== undefined && { oldestSnapshot: found.oldest.snapshotId }),
  };
  const onUnits = PROBES.backup.filter((p) => p.afterUnits === true);
  checks.push(...(await probeChecks('backup', onUnits, probeClients, units, who)));
  return { checks, ...(found.newest !== undefined && { newest: found.newest.snapshotId }) };
}

async function copyChecks(
  config: Config,
  iam: ProbeClients['iam'],
  region: string,
  who: string,
  newest: string,
): Promise<Check[]> {
  const copyRegion = config.backup.copyToRegion;
  if (copyRegion === undefined) return [];
  const clients = createClients(config.aws, { region: copyRegion, purpose: 'checking the DR copies' });
  try {
    const subjects: CopySubjects = {
      configName: config.name,
      sourceRegion: region,
      copyRegion,
      snapshotId: newest,
    };
    const checks = await probeChecks('dr copies', PROBES['dr copies'], { ...clients, iam }, subjects, who);
    const key = config.backup.copyKmsKeyId;
    if (key !== undefined)
      checks.push(await keyCheck('dr copies', clients, key, copyRegion, '[backup] copy-kms-key-id'));
    return checks;
  } finally {
    clients.destroy();
  }
}

async function keyCheck(
  area: Check['area'],
  clients: AwsClients,
  key: string,
  region: string,
  setting: string,
): Promise<Check> {
  const name = `${setting} ${key}`;
  try {
    await checkKmsKey(clients.kms, key, region, setting);
    return { area, name, status: 'ok', detail: `enabled in ${region}` };
  } catch (err) {
    return {
      area,
      name,
      status: 'fail',
      detail: describeError(err),
      fix: `use an enabled key of ${region}, and grant kms:DescribeKey on it`,
    };
  }
}

async function restoreChecks(
  config: Config,
  iam: ProbeClients['iam'],
  region: string,
  who: string,
): Promise<Check[]> {
  const clients = createClients(config.aws, { region });
  try {
    const settings = config.restore;
    const subjects: RestoreSubjects = {
      region,
      createVolume: settings.createVolume,
      ...(settings.instanceType !== undefined && { instanceType: settings.instanceType }),
      ...(settings.iamInstanceProfile !== undefined && { instanceProfile: settings.iamInstanceProfile }),
      ...(settings.availabilityZone !== undefined && { availabilityZone: settings.availabilityZone }),
    };
    const probeClients = { ec2: clients.ec2, ebs: clients.ebs, iam };
    const checks = await probeChecks(
      'restore',
      PROBES.restore,
      probeClients,
      subjects,
      who,
      `, in ${region}`,
    );
    const key = settings.kmsKeyId;
    if (key !== undefined)
      checks.push(await keyCheck('restore', clients, key, region, '[restore] kms-key-id'));
    return checks;
  } finally {
    clients.destroy();
  }
}

/** The caller, from STS GetCallerIdentity, which needs no permission: a failure is the credentials'. */
async function identity(
  config: Config,
  clients: AwsClients,
  region: string,
): Promise<{ check: Check; who?: string }> {
  try {
    const me = await callerIdentity(config.aws, clients, region);
    const who = me.arn ?? 'the caller';
    return {
      who,
      check: {
        area: 'aws',
        name: 'credentials',
        status: 'ok',
        detail: `${who} (account ${me.account ?? '?'})`,
      },
    };
  } catch (err) {
    return {
      check: {
        area: 'aws',
        name: 'credentials',
        status: 'fail',
        detail: describeError(err),
        fix: 'set [aws] profile, access-key-id and secret-access-key, or role-arn; or give the host an instance role',
      },
    };
  }
}

const MARK: Record<CheckStatus, string> = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL', skip: 'skip' };

export function checklist(checks: Check[]): string {
  const width = Math.max(...checks.map((c) => c.area.length));
  return checks
    .map((c) => {
      const line = `${MARK[c.status]}  ${c.area.padEnd(width)}  ${c.name}: ${c.detail}`;
      return c.fix === undefined ? line : `${line}\n      fix: ${c.fix}`;
    })
    .join('\n');
}

/**
 * `ec2-bpipe doctor`: checks what a first job needs, before Bacula runs one: Node, the state
 * directory, the bpipe plugin, the credentials, and every permission the configured operations
 * use (EC2 with DryRun; the EBS direct APIs, which have none, by a probe only IAM can refuse).
 * Creates, tags and deletes nothing. Exit 1 when any check failed.
 */
/** How requests reach AWS: the CA bundle, the proxy and the endpoints in use, as set. */
function networkCheck(config: Config, clients: AwsClients, region: string): Check {
  const { caBundle, proxy } = clients.network;
  const endpoints = (['ec2', 'ebs', 'sts', 'kms', 'iam'] as const).flatMap((service) => {
    try {
      const url = endpointFor(config.aws, service, region, 'doctor');
      return url === undefined ? [] : [`${service} ${url}`];
    } catch {
      return [];
    }
  });
  return {
    area: 'aws',
    name: 'network',
    status: 'ok',
    detail: [
      caBundle === undefined
        ? "the system's certificate authorities"
        : `CA bundle ${caBundle.file} (${caBundle.from})`,
      proxy === undefined ? 'no proxy' : `proxy ${proxy.url} (${proxy.from})`,
      endpoints.length === 0 ? "AWS's public endpoints" : `endpoints: ${endpoints.join(', ')}`,
    ].join('; '),
  };
}

export async function doctorCommand(ctx: CommandContext, options: DoctorOptions): Promise<void> {
  const { config } = ctx;
  const checks: Check[] = [
    nodeCheck(),
    {
      area: 'setup',
      name: 'config',
      status: 'ok',
      detail: `${config.file ?? 'command line and defaults'} (name ${config.name})`,
    },
    stateDirCheck(config),
    baculaCheck(options.baculaFdConf),
  ];
  let region: string | undefined;
  try {
    region = await resolveRegion(config.aws);
    checks.push({ area: 'aws', name: 'region', status: 'ok', detail: region });
  } catch (err) {
    checks.push({ area: 'aws', name: 'region', status: 'fail', detail: describeError(err) });
  }
  if (region !== undefined) {
    const clients = createClients(config.aws, { region });
    try {
      checks.push(networkCheck(config, clients, region));
      const { check, who } = await identity(config, clients, region);
      checks.push(check);
      if (who !== undefined) {
        // IAM is global: one client serves the probes of every area and Region.
        const globalClients = identityClients(config.aws, clients);
        const { iam } = globalClients;
        try {
          const backup = await backupChecks(config, clients, { ...clients, iam }, region, who);
          checks.push(...backup.checks);
          const newest = backup.newest ?? PLACEHOLDER.snapshot;
          checks.push(...(await copyChecks(config, iam, region, who, newest)));
          checks.push(...(await restoreChecks(config, iam, config.restore.region ?? region, who)));
        } finally {
          globalClients.destroy();
        }
      }
    } finally {
      clients.destroy();
    }
  }
  const failed = checks.filter((c) => c.status === 'fail').length;
  ctx.stdout.write(
    options.json
      ? `${JSON.stringify({ failed, checks }, null, 2)}\n`
      : `${checklist(checks)}\n${failed ? '' : '\nall checks passed.\n'}`,
  );
  if (failed) throw new RuntimeFailure(`${failed} check(s) failed: see the fix under each FAIL line`);
}
