/** Stream format version 1: see docs/FORMAT.md. */
export const FORMAT_NAME = 'ec2-bpipe';
export const FORMAT_VERSION = 1;
export const BLOCK_SIZE = 512 * 1024;
export const GIB = 1024 ** 3;

export type Level = 'Full' | 'Incremental' | 'Differential';

export interface Tag {
  Key: string;
  Value: string;
}

export interface Manifest {
  format: typeof FORMAT_NAME;
  formatVersion: number;
  toolVersion: string;
  config: string;
  job: string;
  /** The level the stream really has, whatever was asked for. */
  level: Level;
  requestedLevel: Level;
  baseJob: string | null;
  /** When the base job's snapshot was taken, so a refusal can name it; null for a Full. */
  baseCreatedAt: string | null;
  region: string;
  kind: 'instance' | 'volumes';
  /** The instance id, or the volume id in volume mode: the catalog directory name. */
  resourceId: string;
  createdAt: string;
  volumes: string[];
  /** The volumes among `volumes` that are encrypted: a restore checks its KMS settings before it creates anything. */
  encryptedVolumes: string[];
}

export interface VolumeMeta {
  volumeId: string;
  snapshotId: string;
  deviceName: string | null;
  deleteOnTermination: boolean | null;
  sizeGiB: number;
  sizeBytes: number;
  blockSize: number;
  level: Level;
  baseSnapshotId: string | null;
  baseJob: string | null;
  /** Blocks (data and explicit zero regions) in the `.ebs` member. */
  blockCount: number;
  volumeType: string | null;
  iops: number | null;
  throughput: number | null;
  encrypted: boolean;
  kmsKeyId: string | null;
  availabilityZone: string | null;
  tags: Tag[];
}

export interface VolumeSum {
  volumeId: string;
  blockCount: number;
  /** Base64 SHA-256 over the concatenated 32-byte SHA-256 digests of the blocks, in index order. */
  checksum: string;
  checksumAlgorithm: 'SHA256';
  checksumAggregationMethod: 'LINEAR';
}

export interface EndMarker {
  complete: true;
  volumes: number;
  blocks: number;
}

export const member = {
  manifest: 'manifest.json',
  instance: 'instance.json',
  volumeMeta: (id: string) => `${id}.json`,
  volumeData: (id: string) => `${id}.ebs`,
  volumeSum: (id: string) => `${id}.sum.json`,
  end: 'end.json',
};

/** Names the sparse member carries in its ustar header, as GNU tar does; GNU.sparse.name holds the real one. */
export const sparseHeaderName = (name: string): string => `GNUSparseFile.0/${name}`;
