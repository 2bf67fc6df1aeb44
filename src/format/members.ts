/**
 * docs/FORMAT.md, "manifest.json" to "end.json": typed parsers of every JSON member of a stream.
 * One definition serves the writer's types and the reader's checks, so `verify` and `restore`
 * accept exactly the same streams. docs/FORMAT.md describes each field.
 *
 * Fields are checked for type and range here; what relates one member to another (a volume's
 * level equals the manifest's, counts equal what was read) is checked by the reader.
 */
import { z } from 'zod';
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

export const tagSchema = z.object({ Key: z.string().min(1).max(128), Value: z.string().max(256) });
export type Tag = z.infer<typeof tagSchema>;
const tags = z.array(tagSchema).max(50);

export const manifestSchema = z.object({
  format: z.literal(FORMAT_NAME),
  formatVersion: z.number().int(),
  toolVersion: label,
  config: configName,
  job: jobName,
  /** The level the stream really has, whatever was asked for. */
  level: levelSchema,
  requestedLevel: levelSchema,
  baseJob: jobName.nullable(),
  /** When the base job's snapshot was taken, so a refusal can name it; null for a Full. */
  baseCreatedAt: timestamp.nullable(),
  region,
  kind: unitKind,
  /** The instance id, or the volume ids joined with `+`: the catalog directory name. */
  resourceId: z.string().max(1024),
  createdAt: timestamp,
  volumes: z.array(volumeId).min(1).max(128),
  /** The volumes among `volumes` that are encrypted: a restore checks its KMS settings before it creates anything. */
  encryptedVolumes: z.array(volumeId).max(128),
});
export type Manifest = z.infer<typeof manifestSchema>;

/** Version 1 streams were written before `requestedLevel`, `baseCreatedAt` and `encryptedVolumes` were always present. */
export const manifestV1Schema = manifestSchema.extend({
  requestedLevel: levelSchema.optional(),
  baseCreatedAt: timestamp.nullable().optional(),
  encryptedVolumes: z.array(volumeId).max(128).optional(),
});

export const instanceMetaSchema = z.object({
  instanceId,
  instanceType: z
    .string()
    .regex(/^[a-z0-9-]+\.[a-z0-9-]+$/, 'expected an instance type such as m5.large')
    .nullable(),
  placement: z.object({
    availabilityZone: label.nullable(),
    availabilityZoneId: label.nullable(),
    groupName: label.nullable(),
    partitionNumber: count.nullable(),
    tenancy: label.nullable(),
  }),
  subnetId: label.nullable(),
  vpcId: label.nullable(),
  securityGroupIds: z.array(label).max(64),
  keyName: label.nullable(),
  rootDeviceName: label.nullable(),
  virtualizationType: label.nullable(),
  bootMode: label.nullable(),
  tpmSupport: label.nullable(),
  enaSupport: z.boolean().nullable(),
  sriovNetSupport: label.nullable(),
  ebsOptimized: z.boolean().nullable(),
  architecture: label.nullable(),
  cpuOptions: z.object({ coreCount: count.nullable(), threadsPerCore: count.nullable() }).nullable(),
  iamInstanceProfileArn: label.nullable(),
  metadataOptions: z
    .object({
      httpTokens: label.nullable(),
      httpPutResponseHopLimit: count.nullable(),
      httpEndpoint: label.nullable(),
      httpProtocolIpv6: label.nullable(),
      instanceMetadataTags: label.nullable(),
    })
    .nullable(),
  /** Base64, as EC2 returns it; EC2 takes at most 16 KiB of user data. */
  userData: z
    .string()
    .max(32 * 1024)
    .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'expected base64')
    .nullable(),
  tags,
  /**
   * The source's platform and billing code (EC2 PlatformDetails, UsageOperation): an instance
   * launched from an AMI registered from snapshots loses a billing product (Windows, RHEL, SLES),
   * and a restore says so. Absent in streams written before these fields.
   */
  platformDetails: label.nullable().optional(),
  /** The UEFI variable store (GetInstanceUefiData), base64, for a UEFI instance; since 0.2. */
  uefiData: z
    .string()
    .max(96 * 1024)
    .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'expected base64')
    .nullable()
    .optional(),
  usageOperation: label.nullable().optional(),
  /**
   * The network interfaces, by device index (primary first), each with its private addresses
   * (primary first), groups, source/destination check and Elastic IP; since 0.3, absent before.
   */
  interfaces: z
    .array(
      z.object({
        deviceIndex: count.max(64),
        subnetId: label,
        privateIps: z
          .array(z.string().regex(/^\d{1,3}(\.\d{1,3}){3}$/, 'expected an IPv4 address'))
          .min(1)
          .max(64),
        securityGroupIds: z.array(label).max(16),
        sourceDestCheck: z.boolean(),
        deleteOnTermination: z.boolean().nullable(),
        description: label,
        elasticIp: z.object({ allocationId: label, publicIp: label }).nullable(),
      }),
    )
    .max(64)
    .optional(),
  /**
   * What else makes the instance what it was (DescribeInstanceAttribute,
   * DescribeInstanceCreditSpecifications, DescribeInstances): null where it could not be read;
   * since 0.3, absent before.
   */
  attributes: z
    .object({
      disableApiTermination: z.boolean().nullable(),
      shutdownBehavior: z.enum(['stop', 'terminate']).nullable(),
      cpuCredits: z.enum(['standard', 'unlimited']).nullable(),
      hibernation: z.boolean().nullable(),
      enclave: z.boolean().nullable(),
    })
    .optional(),
  blockDeviceMappings: z
    .array(z.object({ deviceName: label, volumeId, deleteOnTermination: z.boolean().nullable() }))
    .max(128),
});
export type InstanceMeta = z.infer<typeof instanceMetaSchema>;

export const volumeMetaSchema = z.object({
  volumeId,
  snapshotId,
  deviceName: label.nullable(),
  deleteOnTermination: z.boolean().nullable(),
  sizeGiB: z.number().int().min(1).max(MAX_VOLUME_GIB),
  sizeBytes: z
    .number()
    .int()
    .min(GIB)
    .max(MAX_VOLUME_GIB * GIB),
  blockSize: z.literal(BLOCK_SIZE),
  level: levelSchema,
  baseSnapshotId: snapshotId.nullable(),
  baseJob: jobName.nullable(),
  /** Blocks (data and explicit zero regions) in the `.ebs` member. */
  blockCount: count,
  volumeType: label.nullable(),
  iops: count.nullable(),
  throughput: count.nullable(),
  encrypted: z.boolean(),
  kmsKeyId: label.nullable(),
  availabilityZone: label.nullable(),
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
  indexedSha256: hexSha256.optional(),
});
export type VolumeSum = z.infer<typeof volumeSumSchema>;

export const memberDigestSchema = z.object({ name: z.string().max(256), sha256: hexSha256 });
export type MemberDigest = z.infer<typeof memberDigestSchema>;

export const endMarkerSchema = z.object({
  complete: z.literal(true),
  volumes: count,
  blocks: count,
  /** Version 2: the SHA-256 of every JSON member before `end.json`, in stream order. */
  members: z.array(memberDigestSchema).max(1024).optional(),
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
