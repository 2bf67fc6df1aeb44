import { createHash } from 'node:crypto';
import type { EBSClient } from '@aws-sdk/client-ebs';
import type { EC2Client, Instance, Tag as AwsTag, Volume } from '@aws-sdk/client-ec2';
import type { Logger } from 'pino';
import { type BlockRef, changedBlocks, readBlock, snapshotBlocks } from './aws/blocks.js';
import { applyRetention, type ChainLink, chooseBase, volumeLinks } from './chain.js';
import { createClients } from './aws/clients.js';
import { describeInstance, describeVolumes, instanceMeta, performance, userTags } from './aws/metadata.js';
import { configPathTag, setStreamState, TAG, takeSnapshots, waitForSnapshots } from './aws/snapshots.js';
import { buildFinalizer } from './finalizer.js';
import { resolveUnit, type Unit } from './selection.js';
import type { Handler } from './cli.js';
import type { Config } from './config.js';
import { RuntimeFailure, UsageError } from './errors.js';
import { onInterrupt } from './lifecycle.js';
import { orderedMap } from './pool.js';
import { SparseMapSize } from './stream/sparse.js';
import { BLOCK_SIZE, FORMAT_NAME, FORMAT_VERSION, GIB, member } from './stream/format.js';
import { VolumeDigests } from './stream/digests.js';
import type { Level, Manifest, VolumeMeta, VolumeSum } from './stream/schema.js';
import { StreamWriter } from './stream/writer.js';
import { VERSION } from './version.js';

const LEVELS: Level[] = ['Full', 'Incremental', 'Differential'];

export function parseLevel(raw: string | undefined): Level {
  const level = LEVELS.find((l) => l.toLowerCase() === (raw ?? 'Full').toLowerCase());
  if (!level) throw new UsageError(`--level=${raw}: expected Full, Incremental or Differential.`);
  return level;
}

export function checkJobName(job: string, flag: string): string {
  if (!/^[\w.-]{1,128}$/.test(job)) {
    throw new UsageError(
      `${flag}=${job}: a job name may hold only letters, digits, ".", "_" and "-" (at most 128).`,
    );
  }
  return job;
}

/** One volume of the unit, as it will be streamed. */
export interface PlannedVolume {
  volume: Volume;
  deviceName: string | null;
  deleteOnTermination: boolean | null;
}

export interface BackupRequest {
  unit: Unit;
  job: string;
  requestedLevel: Level;
  prevJob?: string;
}

export interface SnapshotGroup {
  instance?: Instance;
  volumeIds: string[];
}

export interface Plan {
  /** Set in instance mode: its metadata goes into the stream. */
  instance?: Instance;
  volumes: PlannedVolume[];
  groups: SnapshotGroup[];
}

/** The source of a volume's blocks: a fresh listing on every call, since a stream needs three passes. */
type BlockSource = () => AsyncIterable<BlockRef>;

const ZERO_BLOCK = Buffer.alloc(BLOCK_SIZE);
const ZERO_DIGEST = createHash('sha256').update(ZERO_BLOCK).digest();

export class Backup {
  constructor(
    private readonly config: Config,
    private readonly ec2: EC2Client,
    private readonly ebs: EBSClient,
    private readonly region: string,
    private readonly log: Logger,
  ) {}

  async run(request: BackupRequest, destination: NodeJS.WritableStream): Promise<void> {
    const { unit, job } = request;
    const { instance, volumes, groups } = await this.plan(unit);
    const meta = instance ? await instanceMeta(this.ec2, instance) : undefined;
    // Until chains land, every stream is a Full; the manifest says so whatever was asked for.
    const { level, baseJob, bases, baseCreatedAt } = await this.chooseLevel(request, volumes);
    const snapshotIds = new Map<string, string>();
    const taking = onInterrupt(() =>
      snapshotIds.size
        ? `snapshots ${[...snapshotIds.values()].join(', ')} of job ${job} left streaming; the next job will not base on them`
        : `no snapshot of job ${job} was taken`,
    );
    for (const group of groups) {
      const taken = await takeSnapshots(this.ec2, {
        ...(group.instance && {
          instanceId: group.instance.InstanceId!,
          attached: attachedVolumes(group.instance),
        }),
        volumeIds: group.volumeIds,
        description:
          this.config.backup.snapshotDescription ?? `ec2-bpipe ${this.config.name} ${job} ${unit.resourceId}`,
        tags: this.snapshotTags(job, level, baseJob, group.instance?.InstanceId),
        copyVolumeTags: this.config.backup.copyVolumeTags,
      });
      for (const [volumeId, snapshotId] of taken) snapshotIds.set(volumeId, snapshotId);
    }
    const ids = [...snapshotIds.values()];
    this.log.info(`snapshots started: ${[...snapshotIds].map(([v, s]) => `${v}=${s}`).join(' ')}`);
    const snapshots = await waitForSnapshots(this.ec2, ids, this.config.backup.snapshotTimeout, this.log);
    const bySnapshot = new Map(snapshots.map((s) => [s.SnapshotId!, s]));

    const writer = new StreamWriter(destination);
    try {
      const manifest: Manifest = {
        format: FORMAT_NAME,
        formatVersion: FORMAT_VERSION,
        toolVersion: VERSION,
        config: this.config.name,
        job,
        level,
        requestedLevel: request.requestedLevel,
        baseJob,
        baseCreatedAt,
        region: this.region,
        kind: unit.kind,
        resourceId: unit.resourceId,
        createdAt: new Date().toISOString(),
        volumes: volumes.map((v) => v.volume.VolumeId!),
        encryptedVolumes: volumes.filter((v) => v.volume.Encrypted).map((v) => v.volume.VolumeId!),
      };
      await writer.json(member.manifest, manifest);
      if (meta) await writer.json(member.instance, meta);
      let totalBlocks = 0;
      for (const planned of volumes) {
        const volumeId = planned.volume.VolumeId!;
        const snapshotId = snapshotIds.get(volumeId)!;
        const sizeGiB = bySnapshot.get(snapshotId)?.VolumeSize ?? planned.volume.Size!;
        const base = bases.get(volumeId);
        const source: BlockSource = base
          ? () => changedBlocks(this.ebs, base.snapshotId, snapshotId)
          : () => snapshotBlocks(this.ebs, snapshotId);
        totalBlocks += await this.streamVolume(writer, planned, snapshotId, sizeGiB, level, base, source);
      }
      await writer.end(volumes.length, totalBlocks);
    } catch (err) {
      writer.abort(err instanceof Error ? err : new Error(String(err)));
      throw err;
    }
    await setStreamState(this.ec2, ids, 'complete');
    taking();
    this.log.info(`stream complete: ${unit.resourceId} job ${job} (${level}), ${volumes.length} volume(s)`);
    // The stream is whole by now: a retention failure costs storage, not data, so it only warns.
    for (const planned of volumes) {
      const volumeId = planned.volume.VolumeId!;
      try {
        await applyRetention(this.ec2, this.config, volumeId, this.config.backup.keepSnapshots, this.log);
      } catch (err) {
        const reason = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
        this.log.warn(
          `retention for ${volumeId} failed (${reason}); older snapshots are kept until the next job`,
        );
      }
    }
  }

  /**
   * The level the stream really gets. Every volume needs a usable base from the same job; when
   * one has none, the whole stream becomes a Full and the log says why (it reaches the job log).
   */
  private async chooseLevel(
    request: BackupRequest,
    volumes: PlannedVolume[],
  ): Promise<{
    level: Level;
    baseJob: string | null;
    bases: Map<string, ChainLink>;
    baseCreatedAt: string | null;
  }> {
    const full = {
      level: 'Full' as const,
      baseJob: null,
      bases: new Map<string, ChainLink>(),
      baseCreatedAt: null,
    };
    if (request.requestedLevel === 'Full') return full;
    const bases = new Map<string, ChainLink>();
    for (const planned of volumes) {
      const volumeId = planned.volume.VolumeId!;
      const links = await volumeLinks(this.ec2, this.config, volumeId);
      const choice = chooseBase(links, request.requestedLevel, request.prevJob, planned.volume.Size!);
      if (!choice.base) {
        this.log.warn(
          `${request.requestedLevel} of ${volumeId} not possible: ${choice.reason}; taking a Full`,
        );
        return full;
      }
      if (choice.note !== undefined) this.log.info(`${volumeId}: ${choice.note}`);
      bases.set(volumeId, choice.base);
    }
    const jobs = new Set([...bases.values()].map((b) => b.job));
    if (jobs.size > 1) {
      this.log.warn(`the volumes' bases come from different jobs (${[...jobs].join(', ')}); taking a Full`);
      return full;
    }
    const base = [...bases.values()][0]!;
    this.log.info(
      `${request.requestedLevel} based on job ${base.job} (${base.level}, ${base.startTime.toISOString()})`,
    );
    return {
      level: request.requestedLevel,
      baseJob: base.job,
      bases,
      baseCreatedAt: base.startTime.toISOString(),
    };
  }

  async plan(unit: Unit): Promise<Plan> {
    if (unit.kind === 'instance') {
      const instance = await describeInstance(this.ec2, unit.instanceId);
      const excluded = new Set(this.config.backup.excludeDataVolumeIds);
      const mappings = (instance.BlockDeviceMappings ?? []).filter((m) => m.Ebs?.VolumeId !== undefined);
      const rootVolume = mappings.find((m) => m.DeviceName === instance.RootDeviceName)?.Ebs?.VolumeId;
      if (rootVolume !== undefined && excluded.has(rootVolume)) {
        throw new UsageError(
          `[backup] exclude-data-volume-ids names ${rootVolume}, the root volume of ${unit.instanceId}; it cannot be excluded.`,
        );
      }
      const kept = mappings.filter((m) => !excluded.has(m.Ebs!.VolumeId!));
      const described = await describeVolumes(
        this.ec2,
        kept.map((m) => m.Ebs!.VolumeId!),
      );
      const volumes = kept.map((m) => ({
        volume: described.get(m.Ebs!.VolumeId!)!,
        deviceName: m.DeviceName ?? null,
        deleteOnTermination: m.Ebs!.DeleteOnTermination ?? null,
      }));
      return {
        instance,
        volumes: sortByDevice(volumes, instance.RootDeviceName),
        groups: [{ instance, volumeIds: volumes.map((v) => v.volume.VolumeId!) }],
      };
    }
    const described = await describeVolumes(this.ec2, unit.volumeIds);
    const volumes = unit.volumeIds.map((id) => {
      const volume = described.get(id);
      if (!volume) throw new RuntimeFailure(`volume ${id} was not found in ${this.region}`);
      const attachment = volume.Attachments?.[0];
      return {
        volume,
        deviceName: attachment?.Device ?? null,
        deleteOnTermination: attachment?.DeleteOnTermination ?? null,
      };
    });
    // Volumes attached to one instance are snapshotted in one CreateSnapshots call, so they are
    // crash-consistent with each other; detached volumes get a CreateSnapshot each.
    const groups: SnapshotGroup[] = [];
    const byInstance = new Map<string, string[]>();
    for (const v of volumes) {
      const instanceId = v.volume.Attachments?.[0]?.InstanceId;
      if (instanceId === undefined) groups.push({ volumeIds: [v.volume.VolumeId!] });
      else byInstance.set(instanceId, [...(byInstance.get(instanceId) ?? []), v.volume.VolumeId!]);
    }
    for (const [instanceId, volumeIds] of byInstance) {
      groups.push({ instance: await describeInstance(this.ec2, instanceId), volumeIds });
    }
    return { volumes, groups };
  }

  private snapshotTags(
    job: string,
    level: Level,
    baseJob: string | null,
    instanceId: string | undefined,
  ): AwsTag[] {
    const tags: Record<string, string> = {
      ...this.config.backup.snapshotTags,
      [TAG.config]: this.config.name,
      [TAG.configPath]: configPathTag(this.config.path),
      [TAG.job]: job,
      [TAG.baseJob]: baseJob ?? '',
      [TAG.level]: level,
      [TAG.instance]: instanceId ?? '',
      [TAG.state]: 'streaming',
    };
    return Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
  }

  /** Writes the `.json`, `.ebs` and `.sum.json` members of one volume; returns its block count. */
  private async streamVolume(
    writer: StreamWriter,
    planned: PlannedVolume,
    snapshotId: string,
    sizeGiB: number,
    level: Level,
    base: ChainLink | undefined,
    source: BlockSource,
  ): Promise<number> {
    const volumeId = planned.volume.VolumeId!;
    const realSize = sizeGiB * GIB;
    // Pass 1 counts the blocks and the map size, keeping no tokens: tar needs the size up front.
    const map = new SparseMapSize();
    const listing = createHash('sha256');
    for await (const ref of source()) {
      map.add(ref.index * BLOCK_SIZE, BLOCK_SIZE);
      listing.update(`${ref.index},`);
    }
    const expectedListing = listing.digest('hex');
    const meta = volumeMeta(planned, snapshotId, sizeGiB, level, base, map.regions);
    await writer.json(member.volumeMeta(volumeId), meta);
    this.log.info(
      `${volumeId}: ${map.regions} blocks (${((map.regions * BLOCK_SIZE) / 2 ** 20).toFixed(0)} MiB) from ${snapshotId}`,
    );

    const digests = new VolumeDigests();
    const started = Date.now();
    let done = 0;
    let lastReport = started;
    const checkListing = async function* (refs: AsyncIterable<BlockRef>): AsyncGenerator<BlockRef> {
      const hash = createHash('sha256');
      for await (const ref of refs) {
        hash.update(`${ref.index},`);
        yield ref;
      }
      if (hash.digest('hex') !== expectedListing) {
        throw new RuntimeFailure(`${volumeId}: the block list of ${snapshotId} changed between two listings`);
      }
    };
    const indices = async function* (): AsyncGenerator<number> {
      for await (const ref of checkListing(source())) yield ref.index;
    };
    const workers = this.config.backup.workers;
    const fetch = (ref: BlockRef) =>
      ref.token === undefined
        ? Promise.resolve({ data: ZERO_BLOCK, digest: ZERO_DIGEST })
        : readBlock(this.ebs, snapshotId, ref, BLOCK_SIZE);
    const fetchIndexed = async (ref: BlockRef) => ({ index: ref.index, ...(await fetch(ref)) });
    const log = this.log;
    const blocks = async function* (): AsyncGenerator<Buffer> {
      for await (const block of orderedMap(checkListing(source()), workers, fetchIndexed)) {
        digests.add(block.index, block.digest);
        done++;
        if (Date.now() - lastReport >= 10_000) {
          lastReport = Date.now();
          const mib = (done * BLOCK_SIZE) / 2 ** 20;
          log.info(
            `${volumeId}: ${done}/${map.regions} blocks, ${(mib / ((Date.now() - started) / 1000)).toFixed(1)} MiB/s`,
          );
        }
        yield block.data;
      }
    };
    await writer.sparse(member.volumeData(volumeId), realSize, BLOCK_SIZE, map, indices(), blocks());
    const { blockCount, checksum, indexedSha256 } = digests.finish();
    const sum: VolumeSum = {
      volumeId,
      blockCount,
      checksum,
      checksumAlgorithm: 'SHA256',
      checksumAggregationMethod: 'LINEAR',
      indexedSha256,
    };
    await writer.json(member.volumeSum(volumeId), sum);
    const seconds = (Date.now() - started) / 1000;
    this.log.info(`${volumeId}: ${done} blocks streamed in ${seconds.toFixed(1)}s`);
    return done;
  }
}

/** The `<vol-id>.json` member: the volume as the snapshot saw it. */
export function volumeMeta(
  planned: PlannedVolume,
  snapshotId: string,
  sizeGiB: number,
  level: Level,
  base: ChainLink | undefined,
  blockCount: number,
): VolumeMeta {
  const { iops, throughput } = performance(planned.volume);
  return {
    volumeId: planned.volume.VolumeId!,
    snapshotId,
    deviceName: planned.deviceName,
    deleteOnTermination: planned.deleteOnTermination,
    sizeGiB,
    sizeBytes: sizeGiB * GIB,
    blockSize: BLOCK_SIZE,
    level,
    baseSnapshotId: base?.snapshotId ?? null,
    baseJob: base?.job ?? null,
    blockCount,
    volumeType: planned.volume.VolumeType ?? null,
    iops,
    throughput,
    encrypted: planned.volume.Encrypted ?? false,
    kmsKeyId: planned.volume.KmsKeyId ?? null,
    availabilityZone: planned.volume.AvailabilityZone ?? null,
    tags: userTags(planned.volume.Tags),
  };
}

function attachedVolumes(instance: Instance): { volumeId: string; root: boolean }[] {
  return (instance.BlockDeviceMappings ?? [])
    .filter((m) => m.Ebs?.VolumeId !== undefined)
    .map((m) => ({ volumeId: m.Ebs!.VolumeId!, root: m.DeviceName === instance.RootDeviceName }));
}

/** Root device first, then by device name: the order a restore rebuilds the mappings in. */
function sortByDevice(volumes: PlannedVolume[], root: string | undefined): PlannedVolume[] {
  return [...volumes].sort((a, b) => {
    if (a.deviceName === root) return -1;
    if (b.deviceName === root) return 1;
    return (a.deviceName ?? '').localeCompare(b.deviceName ?? '');
  });
}

export const backupCommand: Handler = async (ctx, options) => {
  const job = checkJobName(
    (options.job as string | undefined) ?? `manual-${new Date().toISOString().replace(/[:.]/g, '-')}`,
    '--job',
  );
  const requestedLevel = parseLevel(options.level as string | undefined);
  const clients = createClients(ctx.config.aws, { workers: ctx.config.backup.workers });
  try {
    const unit = await resolveUnit(ctx.config, clients.ec2, options);
    if (options.finalizer) {
      const finalizer = await buildFinalizer(
        ctx.config,
        clients.ec2,
        clients.ebs,
        clients.region,
        unit,
        job,
        ctx.log,
      );
      ctx.stdout.write(`${JSON.stringify(finalizer, null, 2)}\n`);
      return;
    }
    const backup = new Backup(ctx.config, clients.ec2, clients.ebs, clients.region, ctx.log);
    await backup.run(
      {
        unit,
        job,
        requestedLevel,
        ...(typeof options.prevJob === 'string' && options.prevJob !== '' && { prevJob: options.prevJob }),
      },
      ctx.stdout,
    );
  } finally {
    clients.destroy();
  }
};
