import type { EC2Client } from '@aws-sdk/client-ec2';
import type { Logger } from 'pino';
import { type AwsClients, createClients, requireEndpoints } from '../../aws/clients.js';
import type { EndpointService } from '../../aws/endpoints.js';
import type { InstanceMeta } from '../../format/members.js';
import { describeSnapshots, tagResources, waitForSnapshots } from '../../aws/snapshots.js';
import { completeSnapshot, putBlock } from '../../aws/writes.js';
import type { Config } from '../../config.js';
import { messageOf, RuntimeFailure, UsageError } from '../../errors.js';
import type { Input } from '../../inputs.js';
import { liveDisplay } from '../../display.js';
import { onInterrupt } from '../../lifecycle.js';
import { awaitedLater } from '../../pool.js';
import { finalizerManifest } from '../../format/finalizer.js';
import type { Manifest } from '../../format/members.js';
import { readStream, warnFormat1, StreamDefect } from '../../stream/reader.js';
import type { Finalizer } from '../../format/finalizer.js';
import { RESTORE_TAG } from '../../format/tags.js';
import { RestoreJournal } from './journal.js';
import { refuseUnknownVolumes } from '../volume-filter.js';
import { ApplicabilityCheck } from './applicable.js';
import { type LaunchResult } from './launch.js';
import { choosePoint, liveLinks, liveMismatch, type PointChoice } from './point.js';
import { readPointRecord } from '../../format/point-record.js';
import type { ChainLink } from '../../backup/links.js';
import { testInstance } from './restore-test.js';
import { preflight, type Target } from './preflight.js';
import { type RestoredVolume } from './volumes.js';
import { PLANNED, SnapshotSessions, streamProof, type VolumeSession } from './snapshots.js';
import { finishHead } from './finish.js';
import type { AppliedStream, AwsRestoreOptions } from './applied.js';

function plannedKey(region: string, config: string, volumeId: string, job: string): string {
  return `${region}|${config}|${volumeId}|${job}`;
}

/**
 * Restores streams to AWS: one EBS snapshot per volume (StartSnapshot, with the restored snapshot
 * of the base job as parent for an Incremental or Differential; PutSnapshotBlock through the
 * restore workers; CompleteSnapshot with the stream's LINEAR aggregate). No snapshot is completed
 * before the whole stream, end marker included, has been read and checked.
 */
export class AwsRestore {
  private readonly clients = new Map<string, AwsClients>();
  private readonly journal: RestoreJournal;
  /** Dry run: the snapshots earlier streams of this run would have made, for the later links. */
  private readonly planned = new Map<string, string>();
  private readonly applicable: ApplicabilityCheck;
  private readonly snapshots: SnapshotSessions;
  /** Blocks read and verified from the streams so far (the summary line says them). */
  blocksRead = 0;

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
    private readonly print: (line: string) => void,
    private readonly options: AwsRestoreOptions,
  ) {
    this.journal = new RestoreJournal(config.bacula.stateDir, log);
    this.applicable = new ApplicabilityCheck(config, log);
    this.snapshots = new SnapshotSessions(config, log, options.testId, (line) => this.planNote(line));
  }

  /** A line of a dry run's plan: on stdout, or (with --json, where stdout holds the plan object alone) in the log. */
  private planNote(line: string): void {
    if (this.options.json) this.log.info(line);
    else this.print(line);
  }

  /** What this run does with a stream of this kind: launch an instance, create volumes, or neither. */
  private intent(kind: Manifest['kind']): { launching: boolean; creatingVolumes: boolean } {
    const partial = this.options.volumes !== undefined;
    return {
      launching: kind === 'instance' && this.options.launch && !partial,
      creatingVolumes: this.config.restore.createVolume && (kind === 'volumes' || partial),
    };
  }

  /** Refuses the flags that cannot apply to this stream; said before anything is read from AWS. */
  private checkApplicable(manifest: Manifest, name: string): void {
    this.applicable.check(
      {
        to: 'aws',
        kind: manifest.kind,
        launch: this.options.launch,
        partial: this.options.volumes !== undefined,
        createVolume: this.config.restore.createVolume,
      },
      `${name} (${manifest.kind === 'instance' ? 'an instance' : 'a volume'} stream of ${manifest.resourceId})`,
    );
  }

  private async preflight(
    clients: AwsClients,
    manifest: Manifest,
    instance: InstanceMeta | undefined,
  ): Promise<Target> {
    const request = {
      clients,
      config: this.config,
      manifest,
      instance,
      region: clients.region,
      ...this.intent(manifest.kind),
      log: this.log,
    };
    const target = await preflight(request);
    // Bacula's data writers run with --no-launch; the launch comes with restore.json, after every
    // block. Its pre-flight runs now all the same, and a refusal is said while there is time to
    // fix the config: the writer of restore.json reads it when it starts.
    if (
      instance !== undefined &&
      !request.launching &&
      !request.creatingVolumes &&
      this.options.volumes === undefined
    ) {
      try {
        await preflight({ ...request, launching: true });
      } catch (err) {
        if (!(err instanceof UsageError)) throw err;
        this.log.warn(
          `a launch from these snapshots (restore.json, or a restore without --no-launch) would be refused: ${err.message} ` +
            'Fix it before restore.json is restored; the snapshots restored now are kept and reused.',
        );
      }
    }
    return target;
  }

  private clientsFor(region: string): AwsClients {
    let clients = this.clients.get(region);
    if (!clients) {
      // Before any call: a Region whose endpoints the config does not name is refused (exit 2).
      const services: EndpointService[] = [
        'ec2',
        'ebs',
        ...(this.config.restore.kmsKeyId ? ['kms' as const] : []),
      ];
      requireEndpoints(this.config.aws, services, region, 'a restore');
      clients = createClients(this.config.aws, {
        region,
        workers: this.config.restore.workers,
        purpose: 'a restore',
      });
      this.clients.set(region, clients);
    }
    return clients;
  }

  close(): void {
    for (const clients of this.clients.values()) clients.destroy();
  }

  /**
   * Restores one stream. `last`: it is the head of the chain (the last input), whose instance
   * may be launched from live snapshots while the stream is still read.
   */
  async apply(input: Input, { last = false }: { last?: boolean } = {}): Promise<AppliedStream> {
    const settings = this.config.restore;
    /** Set by the manifest, which the reader always delivers first. */
    let begun: { manifest: Manifest; clients: AwsClients } | undefined;
    let instance: InstanceMeta | undefined;
    let prepared:
      { target: Target; parents: Map<string, string> | undefined; live: Map<string, ChainLink> } | undefined;
    /** Volumes restored from their live snapshots: read and verified, nothing written. */
    const liveSessions: VolumeSession[] = [];
    let early: Promise<LaunchResult | undefined> | undefined;
    let current: VolumeSession | undefined;
    const sessions: VolumeSession[] = [];
    const started = (): { manifest: Manifest; clients: AwsClients } => {
      if (begun === undefined) throw new Error('a stream member came before its manifest');
      return begun;
    };
    const session = (): VolumeSession => {
      if (current === undefined) throw new Error('a block came outside a volume');
      return current;
    };
    const pending = onInterrupt(() => {
      const open = sessions.filter((s) => !s.alreadyComplete).map((s) => s.snapshotId);
      return open.length
        ? `snapshots ${open.join(', ')} left pending, not completed: EBS discards them after their timeout; the same restore run again from an intact stream resumes them`
        : undefined;
    });
    // Runs once, before the first snapshot is started: nothing is created when the target or the chain is wrong.
    const prepare = async (): Promise<{
      target: Target;
      parents: Map<string, string> | undefined;
      live: Map<string, ChainLink>;
    }> => {
      if (prepared) return prepared;
      const { manifest, clients } = started();
      const target = await this.preflight(clients, manifest, instance);
      const live = await this.liveOf(clients, manifest, input.name);
      // A chain's base is needed only for the volumes written from the stream.
      const allLive = manifest.volumes.filter((v) => this.selected(v)).every((v) => live.has(v));
      prepared = { target, parents: allLive ? undefined : await this.parents(clients, manifest), live };
      return prepared;
    };
    /** The parents of the written volumes, resolved when the first of them needs one. */
    const parents = async (): Promise<Map<string, string>> => {
      const ready = await prepare();
      ready.parents ??= await this.parents(started().clients, started().manifest);
      return ready.parents;
    };
    const launchEarly = (): void => {
      const { manifest, clients } = started();
      const all = manifest.volumes.filter((v) => this.selected(v)).length;
      if (!last || early || !prepared || instance === undefined || liveSessions.length !== all) return;
      if (this.options.dryRun || !this.intent(manifest.kind).launching) return;
      this.log.info(
        `${manifest.resourceId}: launching from job ${manifest.job}'s snapshots in ${clients.region} while the stream is read and verified`,
      );
      const restored = new Map(
        liveSessions.map((v) => [v.meta.volumeId, { meta: v.meta, snapshotId: v.snapshotId }]),
      );
      // Awaited after the stream: its failure must not end the process before the stream's verdict.
      early = awaitedLater(this.finish({ manifest, instance, target: prepared.target, clients, restored }));
    };
    try {
      const report = await readStream(
        await input.open(),
        input.name,
        {
          manifest: (m) => {
            refuseUnknownVolumes(this.options.volumes, m);
            this.checkApplicable(m, input.name);
            const clients = this.clientsFor(settings.region ?? m.region);
            begun = { manifest: m, clients };
            this.log.info(`restoring ${m.resourceId} job ${m.job} (${m.level}) to ${clients.region}`);
            liveDisplay()?.planJob(
              m.volumes.filter((v) => this.selected(v)).map((volumeId) => ({ volumeId })),
            );
          },
          instance: async (meta) => {
            instance = this.asLaunched(meta);
            await prepare();
          },
          volumeStart: async (meta) => {
            const { live } = await prepare();
            const { manifest, clients } = started();
            if (!this.selected(meta.volumeId)) {
              // Read and checked like the others, written nowhere.
              current = this.snapshots.passOver(clients, meta);
              return;
            }
            const link = live.get(meta.volumeId);
            const mismatch = link && liveMismatch(link, meta, manifest.region);
            if (link && mismatch === undefined) {
              current = this.snapshots.passOver(clients, meta, link.snapshotId);
              liveSessions.push(current);
              const line = `${meta.volumeId}: job ${manifest.job} is live as ${link.snapshotId} in ${clients.region}; nothing is written, the stream is read and verified`;
              if (this.options.dryRun) this.planNote(`snapshot: ${line}`);
              else this.log.info(line);
              launchEarly();
              return;
            }
            if (link)
              this.log.warn(
                `${meta.volumeId}: not restored from ${link.snapshotId}: ${mismatch ?? ''}; writing it from the stream`,
              );
            if (this.options.dryRun) {
              current = this.snapshots.plan(clients, manifest, meta, (await parents()).get(meta.volumeId));
              sessions.push(current);
              return;
            }
            // Started once its sparse map is read: the snapshot is bound to what this stream writes.
            current = undefined;
          },
          volumeMap: async (meta, mapDigest) => {
            if (this.options.dryRun || !this.selected(meta.volumeId)) return;
            if (current !== undefined && liveSessions.includes(current)) return;
            const { manifest, clients } = started();
            const proof = streamProof(manifest, meta, mapDigest);
            current = await this.snapshots.start(
              clients,
              manifest,
              meta,
              (await parents()).get(meta.volumeId),
              proof,
            );
            sessions.push(current);
          },
          block: async (_meta, index, data, digest) => {
            const volume = session();
            if (volume.alreadyComplete) return;
            const { ebs } = started().clients;
            const checksum = digest.toString('base64');
            let written: Promise<void> = Promise.resolve();
            await volume.slots.run(() => {
              written = putBlock(ebs, volume.snapshotId, index, data, checksum).then(() =>
                volume.progress.block(),
              );
              return written;
            });
            // Settles once EBS has the block: until then the reader keeps its memory for us.
            await written;
          },
          volumeEnd: async (_meta, sum) => {
            const volume = session();
            await volume.slots.drain();
            volume.sum = sum;
            volume.progress.finish();
            if (!volume.alreadyComplete) this.snapshots.logWritten(volume);
          },
          end: async () => {
            // The whole stream is read and every checksum matched: only now are snapshots completed.
            const { ebs } = started().clients;
            for (const volume of sessions) {
              if (volume.alreadyComplete) continue;
              if (volume.sum === undefined) throw new Error(`${volume.meta.volumeId} ended without its sums`);
              await completeSnapshot(ebs, volume.snapshotId, volume.sum.blockCount, volume.sum.checksum);
            }
          },
        },
        // As many as the workers: each put in flight holds its block.
        { blocksLent: settings.workers, acceptFormat1: this.options.acceptFormat1 ?? false },
      );
      warnFormat1(this.log, input.name, report.formatVersion);
      this.blocksRead += report.volumes.reduce((n, v) => n + v.blocks, 0);
    } catch (err) {
      if (early !== undefined) throw await launchedBeforeDefect(early, err, started());
      // The pending note stays: the command's error line says which snapshots were left.
      for (const session of sessions) await session.slots.drain().catch(() => undefined);
      if (err instanceof StreamDefect && !err.incomplete && begun !== undefined) {
        await this.snapshots
          .abandon(begun.clients, sessions)
          .catch((tagErr: unknown) =>
            this.log.warn(
              `could not mark the snapshots of a damaged stream as abandoned (${messageOf(tagErr)})`,
            ),
          );
      }
      throw err;
    }
    pending();
    const { manifest: m, clients } = started();
    const { target } = await prepare();
    const { ec2, region } = clients;
    const restored = new Map(
      [...sessions, ...liveSessions].map((s) => [
        s.meta.volumeId,
        { meta: s.meta, snapshotId: s.snapshotId },
      ]),
    );
    if (this.options.dryRun) {
      const verified = `verified ${input.name}: job ${m.job} (${m.level}) of ${m.resourceId}, ${restored.size} volume(s); nothing was created`;
      this.planNote(verified);
      for (const [volumeId, v] of restored)
        this.planned.set(plannedKey(region, m.config, volumeId, m.job), v.snapshotId);
      return { manifest: m, ...(instance && { instance }), target, clients, restored };
    }
    const ids = sessions.map((s) => s.snapshotId);
    if (ids.length) {
      await waitForSnapshots(ec2, ids, 6 * 3600, this.log);
      await tagResources(ec2, ids, [{ Key: RESTORE_TAG.date, Value: new Date().toISOString() }]);
    }
    // Only now, the whole stream verified, is a live snapshot recorded as this job's restore: a
    // later link of the chain, or the finalizer's launch, takes it as the restored one.
    for (const s of [...sessions, ...liveSessions]) {
      await this.journal.record(region, m.config, s.meta.volumeId, m.job, s.snapshotId);
      const from = liveSessions.includes(s) ? ' from=live' : '';
      this.print(`snapshot ${s.snapshotId} source=${s.meta.volumeId} job=${m.job} region=${region}${from}`);
    }
    if (liveSessions.length)
      this.log.info(
        `${input.name}: read and verified to its end; ${liveSessions.length} volume(s) restored from their live snapshots`,
      );
    return {
      manifest: m,
      ...(instance && { instance }),
      target,
      clients,
      restored,
      ...(early && { launched: early }),
    };
  }

  /**
   * The job's snapshots AWS still holds in the target Region, by volume, under [restore]
   * from-snapshots = auto; empty (every block written from the stream) otherwise, or when a
   * restore must make new snapshots (another KMS key, a restore test), with the reason said.
   */
  private async liveOf(
    clients: AwsClients,
    manifest: Manifest,
    name: string,
  ): Promise<Map<string, ChainLink>> {
    const settings = this.config.restore;
    if (settings.fromSnapshots !== 'auto') return new Map();
    const writeAll = (why: string): Map<string, ChainLink> => {
      this.log.info(`${name}: written from the stream, not from job ${manifest.job}'s snapshots: ${why}`);
      return new Map();
    };
    if (settings.kmsKeyId !== undefined)
      return writeAll('[restore] kms-key-id asks for new snapshots in that key');
    const volumes = manifest.volumes.filter((v) => this.selected(v));
    const { links, why } = await liveLinks(
      clients.ec2,
      this.config,
      clients.region,
      manifest.region,
      manifest.job,
      volumes,
    );
    if (why.length)
      this.log.info(
        `${name}: written from the stream where AWS no longer holds the snapshot: ${why.join('; ')}`,
      );
    return links;
  }

  /** The restored snapshot of the base job for each volume of a non-Full stream; refuses when one is missing. */
  private async parents(clients: AwsClients, manifest: Manifest): Promise<Map<string, string>> {
    const parents = new Map<string, string>();
    if (manifest.level === 'Full' || manifest.baseJob === null) return parents;
    const missing: string[] = [];
    for (const volumeId of manifest.volumes.filter((v) => this.selected(v))) {
      const parent =
        this.planned.get(plannedKey(clients.region, manifest.config, volumeId, manifest.baseJob)) ??
        (await this.journal.find(clients.ec2, clients.region, manifest.config, volumeId, manifest.baseJob));
      if (parent === undefined) missing.push(volumeId);
      else parents.set(volumeId, parent);
    }
    if (missing.length) {
      throw new RuntimeFailure(
        `job ${manifest.job} (${manifest.level}) is based on job ${manifest.baseJob} of ${manifest.baseCreatedAt ?? 'an unknown date'}, ` +
          `which has not been restored to ${clients.region} for ${missing.join(', ')}. Restore job ${manifest.baseJob} first ` +
          '(in Bacula, restore the whole directory of the resource: it selects every job of the chain).',
      );
    }
    await this.checkChainKey(clients, manifest, parents);
    return parents;
  }

  /**
   * With --kms-key-id, a chain link still takes its parent's key (AWS gives a child no choice):
   * refuse, before anything is created, a link whose restored parent has another key.
   */
  private async checkChainKey(
    clients: AwsClients,
    manifest: Manifest,
    parents: Map<string, string>,
  ): Promise<void> {
    const wanted = this.config.restore.kmsKeyId;
    // A dry run's planned parents do not exist: they would take the key the plan says.
    const existing = [...parents.values()].filter((id) => !id.startsWith(PLANNED));
    if (wanted === undefined || existing.length === 0) return;
    const other = (await describeSnapshots(clients.ec2, existing)).find((s) => s.KmsKeyId !== wanted);
    if (other !== undefined) {
      throw new UsageError(
        `job ${manifest.job} (${manifest.level}) would be restored on ${other.SnapshotId}, encrypted ${other.KmsKeyId ? `with ${other.KmsKeyId}` : 'without a key'}, ` +
          `and a chain link keeps its parent's key, so [restore] kms-key-id ${wanted} cannot apply. ` +
          'Restore the whole chain, from its Full, with that kms-key-id, or this link without it.',
      );
    }
  }

  private selected(volumeId: string): boolean {
    return this.options.volumes === undefined || this.options.volumes.has(volumeId);
  }

  /**
   * A finalizer (`restore.json`): launches the instance from the restored snapshots of the chain's
   * head, which earlier writers recorded in the journal. Refuses when the head was not applied.
   */
  async applyFinalizer(finalizer: Finalizer, name: string): Promise<AppliedStream> {
    if (finalizer.head === null) {
      throw new RuntimeFailure(
        `${name}: job ${finalizer.job} of ${finalizer.resourceId} has no complete stream to restore`,
      );
    }
    const clients = this.clientsFor(this.config.restore.region ?? finalizer.region);
    const restored = new Map<string, RestoredVolume>();
    const missing: string[] = [];
    for (const meta of finalizer.volumes.filter((v) => this.selected(v.volumeId))) {
      const snapshotId =
        this.planned.get(plannedKey(clients.region, finalizer.config, meta.volumeId, finalizer.head)) ??
        (await this.journal.find(
          clients.ec2,
          clients.region,
          finalizer.config,
          meta.volumeId,
          finalizer.head,
        ));
      if (snapshotId === undefined) missing.push(meta.volumeId);
      else restored.set(meta.volumeId, { meta, snapshotId });
    }
    if (missing.length) {
      throw new RuntimeFailure(
        `${name}: the streams of job ${finalizer.head}, the head of ${finalizer.resourceId}, were not all applied ` +
          `to ${clients.region} (missing ${missing.join(', ')}). Restore the whole directory of the resource, or its chain in order.`,
      );
    }
    const applied = await this.launchable(clients, finalizer, restored, name);
    this.log.info(`${name}: the chain of ${finalizer.resourceId} is applied up to job ${finalizer.head}`);
    return applied;
  }

  /**
   * A restore point AWS still holds (restore --point): the unit's point `choice`, launched from
   * its live snapshots in the target Region (or their DR copies there), with the same checks and
   * pre-flight as a stream's head. Nothing is written to EBS.
   */
  async applyPoint(resourceId: string, choice: PointChoice): Promise<AppliedStream> {
    const choose = (): ReturnType<typeof choosePoint> =>
      choosePoint(
        (r) => this.clientsFor(r).ec2,
        this.config,
        resourceId,
        choice,
        (v) => this.selected(v),
        this.log,
      );
    // A job named outright has one record: its snapshots and the pre-flight are checked side by
    // side (both only read), since they are on the recovery's critical path. `latest` must first
    // know which point is live.
    const named =
      choice === 'latest'
        ? undefined
        : await readPointRecord(this.config.bacula.stateDir, this.config.name, resourceId, choice.job);
    let chosen: Awaited<ReturnType<typeof choosePoint>>;
    let applied: AppliedStream;
    if (named !== undefined) {
      const clients = this.clientsFor(this.config.restore.region ?? named.region);
      [chosen, applied] = await Promise.all([
        choose(),
        this.launchable(clients, named, new Map(), `point ${named.head}`),
      ]);
      applied.restored = chosen.restored;
    } else {
      chosen = await choose();
      applied = await this.launchable(
        this.clientsFor(chosen.region),
        chosen.record,
        chosen.restored,
        `point ${chosen.record.head}`,
      );
    }
    const { record, restored, region } = chosen;
    this.log.info(
      `${resourceId}: restoring point ${record.head} (${record.headLevel ?? 'Full'} of ${record.createdAt}) from its snapshots in ${region}: ` +
        [...restored].map(([volumeId, v]) => `${volumeId}=${v.snapshotId}`).join(' '),
    );
    return applied;
  }

  /** A finalizer's or a point's head, checked and pre-flighted for the launch from `restored`. */
  private async launchable(
    clients: AwsClients,
    finalizer: Finalizer,
    restored: Map<string, RestoredVolume>,
    name: string,
  ): Promise<AppliedStream> {
    const manifest = finalizerManifest(finalizer);
    this.checkApplicable(manifest, name);
    const instance = finalizer.instance ? this.asLaunched(finalizer.instance) : undefined;
    const target = await this.preflight(clients, manifest, instance);
    return { manifest, ...(instance && { instance }), target, clients, restored };
  }

  /** The instance as this restore launches it: as it was, or as a restore test does. */
  private asLaunched(meta: InstanceMeta): InstanceMeta {
    return this.options.testId === undefined ? meta : testInstance(meta);
  }

  /** The EC2 client of each Region this restore used: a restore test removes what it made there. */
  regions(): { region: string; ec2: EC2Client }[] {
    return [...this.clients.values()].map((c) => ({ region: c.region, ec2: c.ec2 }));
  }

  /**
   * After the chain: launches the head's instance, or creates volumes for a volume stream (a dry
   * run prints the plan). Returns what was launched (a restore test checks and removes it).
   */
  finish(head: AppliedStream): Promise<LaunchResult | undefined> {
    return finishHead(head, {
      settings: this.config.restore,
      options: this.options,
      intent: this.intent(head.manifest.kind),
      print: this.print,
      log: this.log,
    });
  }
}

/**
 * The error of a stream found damaged after its instance was launched from the live snapshots:
 * the launch is waited for, and the error says where the instance came from. The snapshots are
 * intact in AWS (immutable, and checked against their tags); this copy of the stream is not.
 */
async function launchedBeforeDefect(
  early: Promise<LaunchResult | undefined>,
  err: unknown,
  { manifest, clients }: { manifest: Manifest; clients: AwsClients },
): Promise<RuntimeFailure> {
  const launch = await early.then(
    (result) => (result ? `instance ${result.instanceId} was launched` : 'nothing was launched'),
    (launchErr: unknown) => `the launch failed too (${messageOf(launchErr)})`,
  );
  return new RuntimeFailure(
    `${messageOf(err)}. Before the stream was found damaged, ${launch} from job ${manifest.job}'s snapshots in ${clients.region}, ` +
      'which AWS holds intact: that instance is good, this copy of the stream is not.',
    { cause: err },
  );
}
