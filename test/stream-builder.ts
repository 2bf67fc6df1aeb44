/**
 * Builds real ec2-bpipe streams in memory with the product's own StreamWriter, from a small
 * description: what a backup would write, without AWS. For reader, restore and fuzz tests.
 */
import { createHash } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { VolumeDigests } from '../src/format/digests.js';
import { BLOCK_SIZE, FORMAT_NAME, FORMAT_VERSION, GIB, member } from '../src/format/container.js';
import type { Level } from '../src/format/fields.js';
import type { InstanceMeta, Manifest, VolumeMeta, VolumeSum } from '../src/format/members.js';
import { SparseMapSize } from '../src/format/sparse.js';
import { StreamWriter } from '../src/stream/writer.js';

export interface VolumeSpec {
  volumeId: string;
  sizeGiB?: number;
  /** Block index to its data (BLOCK_SIZE bytes); ascending order is taken care of. */
  blocks: Map<number, Buffer>;
}

export interface StreamSpec {
  job: string;
  level?: Level;
  baseJob?: string | null;
  kind?: 'instance' | 'volumes';
  instanceId?: string;
  volumes: VolumeSpec[];
  config?: string;
  region?: string;
  /** 1 writes what ec2-bpipe 0.1 wrote: no index-bound digest, no member digests. */
  version?: 1 | 2;
  /** When the backup was taken (the manifest's createdAt); a later job must be later. */
  createdAt?: string;
  /** The manifest's toolVersion (`test` unless given; 0.1.0 for version 1). */
  toolVersion?: string;
  /** Every tar member's modification time; the time of writing unless given. */
  mtime?: string;
}

/** A block of deterministic pseudo-random bytes (xorshift32: fast, and never all zero). */
export function block(seed: number): Buffer {
  const words = new Uint32Array(BLOCK_SIZE / 4);
  let x = (seed * 2654435761 + 1) >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  return Buffer.from(words.buffer);
}

export const ZERO = Buffer.alloc(BLOCK_SIZE);

export function instanceMeta(instanceId: string, volumeIds: string[]): InstanceMeta {
  return {
    instanceId,
    instanceType: 'm5.large',
    placement: {
      availabilityZone: 'us-east-1a',
      availabilityZoneId: 'use1-az1',
      groupName: null,
      partitionNumber: null,
      tenancy: 'default',
    },
    subnetId: 'subnet-0123456789abcdef0',
    vpcId: 'vpc-0123456789abcdef0',
    securityGroupIds: ['sg-0123456789abcdef0'],
    keyName: 'ops',
    rootDeviceName: '/dev/xvda',
    virtualizationType: 'hvm',
    bootMode: 'uefi',
    tpmSupport: null,
    enaSupport: true,
    sriovNetSupport: null,
    ebsOptimized: true,
    architecture: 'x86_64',
    cpuOptions: { coreCount: 1, threadsPerCore: 2 },
    iamInstanceProfileArn: null,
    metadataOptions: null,
    userData: 'ZWNobyBoaQ==',
    tags: [{ Key: 'Name', Value: 'web-1' }],
    blockDeviceMappings: volumeIds.map((volumeId, i) => ({
      deviceName: i === 0 ? '/dev/xvda' : `/dev/xvd${String.fromCharCode(98 + i)}`,
      volumeId,
      deleteOnTermination: true,
    })),
  };
}

export async function buildStream(spec: StreamSpec): Promise<Buffer> {
  const level = spec.level ?? 'Full';
  const kind = spec.kind ?? 'instance';
  const volumeIds = spec.volumes.map((v) => v.volumeId);
  const instanceId = spec.instanceId ?? 'i-0123456789abcdef0';
  const sink = new PassThrough();
  const chunks: Buffer[] = [];
  sink.on('data', (chunk: Buffer) => chunks.push(chunk));
  const writer = new StreamWriter(sink, spec.mtime === undefined ? undefined : new Date(spec.mtime));
  const manifest: Manifest = {
    format: FORMAT_NAME,
    formatVersion: spec.version ?? FORMAT_VERSION,
    toolVersion: spec.toolVersion ?? (spec.version === 1 ? '0.1.0' : 'test'),
    config: spec.config ?? 'web',
    job: spec.job,
    level,
    requestedLevel: level,
    baseJob: spec.baseJob ?? null,
    baseCreatedAt: spec.baseJob ? '2026-11-01T00:00:00.000Z' : null,
    region: spec.region ?? 'us-east-1',
    kind,
    resourceId: kind === 'instance' ? instanceId : volumeIds.join('+'),
    createdAt: spec.createdAt ?? '2026-11-02T00:00:00.000Z',
    volumes: volumeIds,
    encryptedVolumes: [],
  };
  await writer.json(member.manifest, manifest);
  if (kind === 'instance') await writer.json(member.instance, instanceMeta(instanceId, volumeIds));
  let total = 0;
  for (const [i, volume] of spec.volumes.entries()) {
    const sizeGiB = volume.sizeGiB ?? 1;
    const indices = [...volume.blocks.keys()].sort((a, b) => a - b);
    const meta: VolumeMeta = {
      volumeId: volume.volumeId,
      snapshotId: `snap-${createHash('sha256').update(`${spec.job}${i}`).digest('hex').slice(0, 17)}`,
      deviceName: kind === 'instance' ? `/dev/xvd${String.fromCharCode(97 + i)}` : null,
      deleteOnTermination: kind === 'instance' ? true : null,
      sizeGiB,
      sizeBytes: sizeGiB * GIB,
      blockSize: BLOCK_SIZE,
      level,
      baseSnapshotId: level === 'Full' ? null : 'snap-0123456789abcdef0',
      baseJob: spec.baseJob ?? null,
      blockCount: indices.length,
      volumeType: 'gp3',
      iops: 3000,
      throughput: 125,
      encrypted: false,
      kmsKeyId: null,
      availabilityZone: 'us-east-1a',
      tags: [],
    };
    await writer.json(member.volumeMeta(volume.volumeId), meta);
    const map = new SparseMapSize();
    for (const index of indices) map.add(index * BLOCK_SIZE, BLOCK_SIZE);
    const digests = new VolumeDigests();
    const data = async function* (): AsyncGenerator<Buffer> {
      for (const index of indices) {
        const bytes = volume.blocks.get(index) ?? ZERO;
        digests.add(index, createHash('sha256').update(bytes).digest());
        yield bytes;
      }
    };
    const list = async function* (): AsyncGenerator<number> {
      yield* indices;
    };
    await writer.sparse(member.volumeData(volume.volumeId), sizeGiB * GIB, BLOCK_SIZE, map, list(), data());
    const sums = digests.finish();
    const sum: VolumeSum = {
      volumeId: volume.volumeId,
      blockCount: sums.blockCount,
      checksum: sums.checksum,
      checksumAlgorithm: 'SHA256',
      checksumAggregationMethod: 'LINEAR',
      ...(spec.version !== 1 && { indexedSha256: sums.indexedSha256 }),
    };
    await writer.json(member.volumeSum(volume.volumeId), sum);
    total += indices.length;
  }
  if (spec.version === 1) {
    await writer.json(member.end, { complete: true, volumes: spec.volumes.length, blocks: total });
    await writer.close();
  } else {
    await writer.end(spec.volumes.length, total);
  }
  return Buffer.concat(chunks);
}
