/**
 * docs/FORMAT.md, "manifest.json" to "end.json": typed parsers of every JSON member of a stream.
 * One definition serves the writer's types and the reader's checks, so `verify` and `restore`
 * accept exactly the same streams. docs/FORMAT.md describes each field.
 *
 * Fields are checked for type and range here; what relates one member to another (a volume's
 * level equals the manifest's, counts equal what was read) is checked by the reader.
 */
import * as z from 'zod/mini';
import { INSTANCE_ID, VOLUME_ID } from '../ids.js';
import { BLOCK_SIZE, FORMAT_NAME, GIB } from './container.js';
import {
  base64Sha256,
  configName,
  count,
  hexSha256,
  instanceId,
  jobName,
  label,
  levelSchema,
  region,
  snapshotId,
  timestamp,
  unitKind,
  volumeId,
} from './fields.js';

/** The largest EBS volume (io2 Block Express): 64 TiB. */
export const MAX_VOLUME_GIB = 65536;

export const tagSchema = z.object({
  Key: z.string().check(z.minLength(1), z.maxLength(128)),
  Value: z.string().check(z.maxLength(256)),
});
export type Tag = z.infer<typeof tagSchema>;
const tags = z.array(tagSchema).check(z.maxLength(50));

export const manifestSchema = z.object({
  format: z.literal(FORMAT_NAME),
  formatVersion: z.int(),
  toolVersion: label,
  config: configName,
  job: jobName,
  /** The level the stream really has, whatever was asked for. */
  level: levelSchema,
  requestedLevel: levelSchema,
  baseJob: z.nullable(jobName),
  /** When the base job's snapshot was taken, so a refusal can name it; null for a Full. */
  baseCreatedAt: z.nullable(timestamp),
  region,
  kind: unitKind,
  /** The instance id, or the volume ids joined with `+`: the catalog directory name. */
  resourceId: z.string().check(z.maxLength(1024)),
  createdAt: timestamp,
  volumes: z.array(volumeId).check(z.minLength(1), z.maxLength(128)),
  /** The volumes among `volumes` that are encrypted: a restore checks its KMS settings before it creates anything. */
  encryptedVolumes: z.array(volumeId).check(z.maxLength(128)),
});
export type Manifest = z.infer<typeof manifestSchema>;

/** Version 1 streams were written before `requestedLevel`, `baseCreatedAt` and `encryptedVolumes` were always present. */
export const manifestV1Schema = z.extend(manifestSchema, {
  requestedLevel: z.optional(levelSchema),
  baseCreatedAt: z.optional(z.nullable(timestamp)),
  encryptedVolumes: z.optional(z.array(volumeId).check(z.maxLength(128))),
});

export const instanceMetaSchema = z.object({
  instanceId,
  instanceType: z.nullable(
    z.string().check(z.regex(/^[a-z0-9-]+\.[a-z0-9-]+$/, 'expected an instance type such as m5.large')),
  ),
  placement: z.object({
    availabilityZone: z.nullable(label),
    availabilityZoneId: z.nullable(label),
    groupName: z.nullable(label),
    partitionNumber: z.nullable(count),
    tenancy: z.nullable(label),
  }),
  subnetId: z.nullable(label),
  vpcId: z.nullable(label),
  securityGroupIds: z.array(label).check(z.maxLength(64)),
  keyName: z.nullable(label),
  rootDeviceName: z.nullable(label),
  virtualizationType: z.nullable(label),
  bootMode: z.nullable(label),
  tpmSupport: z.nullable(label),
  enaSupport: z.nullable(z.boolean()),
  sriovNetSupport: z.nullable(label),
  ebsOptimized: z.nullable(z.boolean()),
  architecture: z.nullable(label),
  cpuOptions: z.nullable(z.object({ coreCount: z.nullable(count), threadsPerCore: z.nullable(count) })),
  iamInstanceProfileArn: z.nullable(label),
  metadataOptions: z.nullable(
    z.object({
      httpTokens: z.nullable(label),
      httpPutResponseHopLimit: z.nullable(count),
      httpEndpoint: z.nullable(label),
      httpProtocolIpv6: z.nullable(label),
      instanceMetadataTags: z.nullable(label),
    }),
  ),
  /** Base64, as EC2 returns it; EC2 takes at most 16 KiB of user data. */
  userData: z.nullable(
    z.string().check(z.maxLength(32 * 1024), z.regex(/^[A-Za-z0-9+/]*={0,2}$/, 'expected base64')),
  ),
  tags,
  /**
   * The source's platform and billing code (EC2 PlatformDetails, UsageOperation): an instance
   * launched from an AMI registered from snapshots loses a billing product (Windows, RHEL, SLES),
   * and a restore says so. Absent in streams written before these fields.
   */
  platformDetails: z.optional(z.nullable(label)),
  /** The UEFI variable store (GetInstanceUefiData), base64, for a UEFI instance; since 0.2. */
  uefiData: z.optional(
    z.nullable(
      z.string().check(z.maxLength(96 * 1024), z.regex(/^[A-Za-z0-9+/]*={0,2}$/, 'expected base64')),
    ),
  ),
  usageOperation: z.optional(z.nullable(label)),
  /**
   * The network interfaces, by device index (primary first), each with its private addresses
   * (primary first), groups, source/destination check and Elastic IP; since 0.3, absent before.
   */
  interfaces: z.optional(
    z
      .array(
        z.object({
          deviceIndex: count.check(z.maximum(64)),
          subnetId: label,
          privateIps: z
            .array(z.string().check(z.regex(/^\d{1,3}(\.\d{1,3}){3}$/, 'expected an IPv4 address')))
            .check(z.minLength(1), z.maxLength(64)),
          securityGroupIds: z.array(label).check(z.maxLength(16)),
          sourceDestCheck: z.boolean(),
          deleteOnTermination: z.nullable(z.boolean()),
          description: label,
          elasticIp: z.nullable(z.object({ allocationId: label, publicIp: label })),
        }),
      )
      .check(z.maxLength(64)),
  ),
  /**
   * What else makes the instance what it was (DescribeInstanceAttribute,
   * DescribeInstanceCreditSpecifications, DescribeInstances): null where it could not be read;
   * since 0.3, absent before.
   */
  attributes: z.optional(
    z.object({
      disableApiTermination: z.nullable(z.boolean()),
      shutdownBehavior: z.nullable(z.enum(['stop', 'terminate'])),
      cpuCredits: z.nullable(z.enum(['standard', 'unlimited'])),
      hibernation: z.nullable(z.boolean()),
      enclave: z.nullable(z.boolean()),
    }),
  ),
  blockDeviceMappings: z
    .array(z.object({ deviceName: label, volumeId, deleteOnTermination: z.nullable(z.boolean()) }))
    .check(z.maxLength(128)),
});
export type InstanceMeta = z.infer<typeof instanceMetaSchema>;

export const volumeMetaSchema = z.object({
  volumeId,
  snapshotId,
  deviceName: z.nullable(label),
  deleteOnTermination: z.nullable(z.boolean()),
  sizeGiB: z.int().check(z.minimum(1), z.maximum(MAX_VOLUME_GIB)),
  sizeBytes: z.int().check(z.minimum(GIB), z.maximum(MAX_VOLUME_GIB * GIB)),
  blockSize: z.literal(BLOCK_SIZE),
  level: levelSchema,
  baseSnapshotId: z.nullable(snapshotId),
  baseJob: z.nullable(jobName),
  /** Blocks (data and explicit zero regions) in the `.ebs` member. */
  blockCount: count,
  volumeType: z.nullable(label),
  iops: z.nullable(count),
  throughput: z.nullable(count),
  encrypted: z.boolean(),
  kmsKeyId: z.nullable(label),
  availabilityZone: z.nullable(label),
  tags,
});
export type VolumeMeta = z.infer<typeof volumeMetaSchema>;

export const volumeSumSchema = z.object({
  volumeId,
  blockCount: count,
  /** Base64 SHA-256 over the concatenated 32-byte SHA-256 digests of the blocks, in map order (EBS LINEAR). */
  checksum: base64Sha256,
  checksumAlgorithm: z.literal('SHA256'),
  checksumAggregationMethod: z.literal('LINEAR'),
  /**
   * Version 2: hex SHA-256 over, for each region in map order, its 8-byte big-endian block
   * index and the 32-byte SHA-256 of its data. Binds every block to where it belongs.
   */
  indexedSha256: z.optional(hexSha256),
});
export type VolumeSum = z.infer<typeof volumeSumSchema>;

export const memberDigestSchema = z.object({ name: z.string().check(z.maxLength(256)), sha256: hexSha256 });
export type MemberDigest = z.infer<typeof memberDigestSchema>;

export const endMarkerSchema = z.object({
  complete: z.literal(true),
  volumes: count,
  blocks: count,
  /** Version 2: the SHA-256 of every JSON member before `end.json`, in stream order. */
  members: z.optional(z.array(memberDigestSchema).check(z.maxLength(1024))),
});
export type EndMarker = z.infer<typeof endMarkerSchema>;

/** Whether `resourceId` is a catalog name of its kind: an instance id, or volume ids joined with `+`. */
export function resourceIdValid(kind: 'instance' | 'volumes', resourceId: string): boolean {
  return kind === 'instance'
    ? INSTANCE_ID.test(resourceId)
    : resourceId.split('+').every((id) => VOLUME_ID.test(id));
}

/** Whether `resourceId` names what the manifest's kind says: the instance, or the volumes joined with `+`. */
export function resourceIdMatches(
  kind: 'instance' | 'volumes',
  resourceId: string,
  volumes: string[],
): boolean {
  return kind === 'instance' ? INSTANCE_ID.test(resourceId) : resourceId === volumes.join('+');
}
