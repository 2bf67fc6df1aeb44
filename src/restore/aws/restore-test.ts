/**
 * Restore tests (restore --test, docs/DESIGN.md §13): a restore that proves the instance boots.
 * The restore runs as any other, into the test subnet and groups, with everything it creates
 * tagged with the test's id; the instance must run and pass both EC2 status checks; then the
 * instance, its AMI, volumes and restored snapshots are removed, whatever happened before.
 */
import { randomUUID } from 'node:crypto';
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { Logger } from 'pino';
import {
  consoleTail,
  type Removal,
  removeTestResources,
  type StatusChecks,
  statusChecks,
} from '../../aws/restore-test.js';
import { RESTORE_TAG } from '../../format/tags.js';
import { type Config, setKey } from '../../config.js';
import { describeError, UsageError } from '../../errors.js';
import type { InstanceMeta } from '../../format/members.js';
import type { LaunchResult } from './launch.js';

/**
 * How long the status checks may take to report. EC2 starts them once the instance runs and
 * reports within minutes; the instance check passes only once the guest answers, so a slow boot
 * (a large Windows instance) needs most of this.
 */
export const STATUS_CHECKS_TIMEOUT_S = 900;

/** How long terminating the test instance may take before its volumes are given up on. */
export const TERMINATE_TIMEOUT_S = 600;

/** Lines of the console kept in the report: enough for a boot's last steps or its panic. */
export const CONSOLE_LINES = 20;

/** What a restore test found, printed as lines or, with --json, as one object. */
export interface TestReport {
  test: string;
  passed: boolean;
  /** Why it failed, when it did. */
  failure?: string;
  region?: string;
  instanceId?: string;
  imageId?: string;
  /** Seconds from the start of the run to the end of each stage reached. */
  stages: { stage: 'restored' | 'running' | 'checked' | 'removed'; seconds: number }[];
  checks?: StatusChecks;
  console: string[];
  removed?: Removal;
}

/**
 * The instance as a test launches it: never protected from termination (the test must end it),
 * every volume and interface deleted with it, no Elastic IP taken from the source, and none of
 * the source's tags, which could make the test instance a unit of the next backup; a Name says
 * what it is.
 */
export function testInstance(meta: InstanceMeta): InstanceMeta {
  return {
    ...meta,
    tags: [{ Key: 'Name', Value: `ec2-bpipe restore test of ${meta.instanceId}` }],
    blockDeviceMappings: meta.blockDeviceMappings.map((m) => ({ ...m, deleteOnTermination: true })),
    ...(meta.interfaces && {
      interfaces: meta.interfaces.map((i) => ({ ...i, elasticIp: null, deleteOnTermination: true })),
    }),
    ...(meta.attributes && { attributes: { ...meta.attributes, disableApiTermination: false } }),
  };
}

export class RestoreTest {
  /** Tags everything this run creates; the removal finds them by it. */
  readonly id = randomUUID();
  private readonly started = performance.now();
  readonly report: TestReport;

  constructor(private readonly log: Logger) {
    this.report = { test: this.id, passed: false, stages: [], console: [] };
  }

  /**
   * The config of the test's restore: [restore] test-subnet-id and test-security-group-ids in
   * place of the usual target when set, the test tag on everything, no AMI kept.
   */
  configure(config: Config): Config {
    if (config.restore.keepPrivateIp)
      throw new UsageError(
        '--test launches beside the source: --keep-private-ip (or [restore] keep-private-ip) would take its addresses. Leave it off for tests.',
      );
    const test = structuredClone(config);
    const { testSubnetId, testSecurityGroupIds } = config.restore;
    if (testSubnetId !== undefined)
      setKey(test, 'restore', 'subnet-id', testSubnetId, '[restore] test-subnet-id');
    if (testSecurityGroupIds !== undefined)
      setKey(
        test,
        'restore',
        'security-group-ids',
        testSecurityGroupIds.join(','),
        '[restore] test-security-group-ids',
      );
    test.restore.tags = { ...config.restore.tags, [RESTORE_TAG.test]: this.id };
    test.restore.keepImage = false;
    return test;
  }

  stage(stage: TestReport['stages'][number]['stage']): void {
    this.report.stages.push({
      stage,
      seconds: Number(((performance.now() - this.started) / 1000).toFixed(1)),
    });
  }

  /** Waits for the status checks of the launched instance and reads its console. */
  async check(ec2: EC2Client, region: string, launched: LaunchResult): Promise<void> {
    this.report.region = region;
    this.report.instanceId = launched.instanceId;
    this.report.imageId = launched.imageId;
    this.stage('running');
    const checks = await statusChecks(ec2, launched.instanceId, STATUS_CHECKS_TIMEOUT_S);
    this.report.checks = checks;
    this.stage('checked');
    try {
      this.report.console = await consoleTail(ec2, launched.instanceId, CONSOLE_LINES);
    } catch (err) {
      this.log.warn(`the console output of ${launched.instanceId} could not be read (${describeError(err)})`);
    }
    this.report.passed = checks.passed;
    if (!checks.passed)
      this.report.failure = `${launched.instanceId} failed its status checks (system ${checks.system}, instance ${checks.instance})`;
  }

  /** Removes what the test created in each Region it used; never throws, the report says what was left. */
  async remove(regions: { region: string; ec2: EC2Client }[]): Promise<Removal> {
    const all: Removal = { terminated: [], deregistered: [], volumes: [], snapshots: [], left: [] };
    for (const { region, ec2 } of regions) {
      try {
        const removal = await removeTestResources(ec2, this.id, TERMINATE_TIMEOUT_S);
        for (const key of Object.keys(all) as (keyof Removal)[]) all[key].push(...removal[key]);
      } catch (err) {
        all.left.push(`what the test created in ${region} (${describeError(err)})`);
      }
    }
    this.report.removed = all;
    this.stage('removed');
    return all;
  }

  /** The report as log-like lines for stdout. */
  lines(): string[] {
    const r = this.report;
    const removed = r.removed;
    return [
      `test ${r.passed ? 'passed' : 'FAILED'}${r.failure ? `: ${r.failure}` : ''}`,
      ...(r.instanceId
        ? [`instance ${r.instanceId} image ${r.imageId ?? '-'} region ${r.region ?? '-'}`]
        : []),
      `stages: ${r.stages.map((s) => `${s.stage} ${s.seconds}s`).join(', ') || 'none'}`,
      ...(r.checks ? [`status checks: system ${r.checks.system}, instance ${r.checks.instance}`] : []),
      ...r.console.map((line) => `console: ${line}`),
      ...(removed
        ? [
            `removed: ${removed.terminated.length} instance(s), ${removed.deregistered.length} image(s), ${removed.volumes.length} volume(s), ${removed.snapshots.length} snapshot(s)`,
            ...removed.left.map((l) => `left: ${l}`),
          ]
        : []),
    ];
  }
}
