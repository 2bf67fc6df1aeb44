import { createHash, createHmac, randomBytes } from 'node:crypto';
import { bodySha256 } from './sigv4.js';
import type { Tag } from '@aws-sdk/client-ec2';
import { Block, BLOCK_SIZE } from './blocks.js';
import { ACCOUNT_ID, ApiError, newId, pendingSnapshot, type SnapshotRecord, type World } from './state.js';

export interface EbsRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export interface EbsResponse {
  action: string;
  status: number;
  headers?: Record<string, string>;
  json?: unknown;
  data?: Buffer;
}

const validation = (message: string, reason: string): ApiError =>
  new ApiError('ValidationException', message, 400, { Reason: reason });
const notFound = (message: string): ApiError =>
  new ApiError('ResourceNotFoundException', message, 404, { Reason: 'SNAPSHOT_NOT_FOUND' });

/**
 * The errors the EBS direct APIs answer, as "Error retries for EBS direct APIs" lists them
 * (Amazon EBS User Guide, docs.aws.amazon.com/ebs/latest/userguide/error-retries.html): the
 * status, a message of the documented kind, and the calls that can answer each. The table's
 * RequestThrottleException is the RequestThrottledException of the API reference's "Errors".
 * ConcurrentLimitExceededException comes from those "Errors" (GetSnapshotBlock, PutSnapshotBlock),
 * and ServiceUnavailable stands for a 5xx that no model names (a load balancer's 503).
 * Tests inject them through the admin API (`POST fail`, or the seeded `errorRate` over
 * `errorCodes`), so each row can be proven retried or final.
 */
export const EBS_ACTIONS = [
  'StartSnapshot',
  'CompleteSnapshot',
  'ListSnapshotBlocks',
  'ListChangedBlocks',
  'GetSnapshotBlock',
  'PutSnapshotBlock',
];
export const EBS_ERRORS: Record<
  string,
  { status: number; message: string; thrownBy: string[]; reason?: string }
> = {
  InternalServerException: { status: 500, message: 'Internal error', thrownBy: EBS_ACTIONS },
  ThrottlingException: { status: 400, message: 'Rate exceeded for the account', thrownBy: EBS_ACTIONS },
  RequestThrottledException: {
    status: 400,
    message: 'Rate exceeded for the snapshot',
    thrownBy: ['GetSnapshotBlock', 'PutSnapshotBlock'],
    reason: 'DEPENDENCY_REQUEST_THROTTLED',
  },
  ValidationException: { status: 400, message: 'Failed to read block data', thrownBy: EBS_ACTIONS },
  ResourceNotFoundException: { status: 404, message: 'The snapshot does not exist', thrownBy: EBS_ACTIONS },
  ConflictException: {
    status: 409,
    message: 'The client token was used before with other parameters',
    thrownBy: ['StartSnapshot'],
  },
  AccessDeniedException: { status: 403, message: 'You do not have sufficient access', thrownBy: EBS_ACTIONS },
  ServiceQuotaExceededException: { status: 402, message: 'Quota exceeded', thrownBy: EBS_ACTIONS },
  InvalidSignatureException: {
    status: 403,
    message: 'The request signature is invalid',
    thrownBy: EBS_ACTIONS,
  },
  ConcurrentLimitExceededException: {
    status: 400,
    message: 'You have reached the limit for concurrent API requests',
    thrownBy: ['GetSnapshotBlock', 'PutSnapshotBlock'],
  },
  ServiceUnavailable: { status: 503, message: 'Service unavailable', thrownBy: EBS_ACTIONS },
};

/**
 * The error `code` as `action` answers it, with the table's status unless one is given; refuses
 * a code the table says the action never answers, so a test cannot prove a retry of a fiction.
 */
export function ebsError(action: string, code: string, message?: string, status?: number): ApiError {
  const row = EBS_ERRORS[code];
  if (row === undefined) return new ApiError(code, message ?? 'Injected failure', status ?? 400);
  if (!row.thrownBy.includes(action))
    throw new Error(`${action} never answers ${code} (EBS error retries table)`);
  return new ApiError(
    code,
    message ?? row.message,
    status ?? row.status,
    row.reason === undefined ? {} : { Reason: row.reason },
  );
}

/**
 * The lengths StartSnapshot takes (EBS API reference; the EBS service model's shapes):
 * IdempotencyToken at most 255 non-space characters, Description at most 255, TagKey at most 127
 * and TagValue at most 255 ("Tag" data type); at most 50 tags, as on every EC2 resource ("Tag
 * your Amazon EC2 resources", tag restrictions); keys under aws: are AWS's own.
 */
const START_LIMITS = { clientToken: 255, description: 255, tagKey: 127, tagValue: 255, tags: 50 };

function checkStartLimits(input: Record<string, unknown>): void {
  const token = input.ClientToken;
  if (
    token !== undefined &&
    (typeof token !== 'string' || token.length > START_LIMITS.clientToken || !/^\S+$/.test(token))
  ) {
    throw validation(
      `ClientToken must be 1 to ${START_LIMITS.clientToken} non-space characters`,
      'INVALID_PARAMETER_VALUE',
    );
  }
  const description = input.Description;
  if (
    description !== undefined &&
    (typeof description !== 'string' || description.length > START_LIMITS.description)
  ) {
    throw validation(
      `Description must be at most ${START_LIMITS.description} characters`,
      'INVALID_PARAMETER_VALUE',
    );
  }
  const tags = (input.Tags as Tag[] | undefined) ?? [];
  if (tags.length > START_LIMITS.tags) {
    throw validation(`At most ${START_LIMITS.tags} tags, not ${tags.length}`, 'INVALID_TAG');
  }
  for (const tag of tags) {
    if (!tag.Key || tag.Key.toLowerCase().startsWith('aws:') || tag.Key.length > START_LIMITS.tagKey) {
      throw validation(
        `Invalid tag key ${tag.Key}: 1 to ${START_LIMITS.tagKey} characters, not under aws:`,
        'INVALID_TAG',
      );
    }
    if ((tag.Value ?? '').length > START_LIMITS.tagValue) {
      throw validation(
        `The value of tag ${tag.Key} is longer than ${START_LIMITS.tagValue} characters`,
        'INVALID_TAG',
      );
    }
  }
}

interface WriteSession {
  written: Set<number>;
}

/** The EBS direct APIs: REST-JSON, routes and statuses as in the SDK's service model. */
export class EbsService {
  private readonly tokenKey = randomBytes(32);
  private readonly sessions = new Map<string, WriteSession>();

  constructor(private readonly world: World) {}

  /** Names the action for a request, before any work, so faults and counters can use it. */
  static actionOf(method: string, path: string): string | undefined {
    if (method === 'POST' && path === '/snapshots') return 'StartSnapshot';
    if (method === 'POST' && /^\/snapshots\/completion\/[^/]+$/.test(path)) return 'CompleteSnapshot';
    if (method === 'GET' && /^\/snapshots\/[^/]+\/blocks$/.test(path)) return 'ListSnapshotBlocks';
    if (method === 'GET' && /^\/snapshots\/[^/]+\/changedblocks$/.test(path)) return 'ListChangedBlocks';
    if (method === 'GET' && /^\/snapshots\/[^/]+\/blocks\/[^/]+$/.test(path)) return 'GetSnapshotBlock';
    if (method === 'PUT' && /^\/snapshots\/[^/]+\/blocks\/[^/]+$/.test(path)) return 'PutSnapshotBlock';
    return undefined;
  }

  handle(region: string, req: EbsRequest): EbsResponse {
    this.world.settle();
    const action = EbsService.actionOf(req.method, req.path);
    if (action) this.world.injectedFailure(action);
    const parts = req.path.split('/').map(decodeURIComponent);
    switch (action) {
      case 'StartSnapshot':
        return this.startSnapshot(region, req);
      case 'CompleteSnapshot':
        return this.completeSnapshot(region, parts[3]!, req);
      case 'ListSnapshotBlocks':
        return this.listSnapshotBlocks(region, parts[2]!, req.query);
      case 'ListChangedBlocks':
        return this.listChangedBlocks(region, parts[2]!, req.query);
      case 'GetSnapshotBlock':
        return this.getSnapshotBlock(region, parts[2]!, parts[4]!, req.query);
      case 'PutSnapshotBlock':
        return this.putSnapshotBlock(region, parts[2]!, parts[4]!, req);
      default:
        throw new ApiError('UnknownOperationException', `No operation at ${req.method} ${req.path}`, 404);
    }
  }

  private sign(payload: object): string {
    const body = Buffer.from(JSON.stringify(payload)).toString('base64');
    const mac = createHmac('sha256', this.tokenKey).update(body).digest('base64');
    return `${body}${mac}`;
  }

  private unsign<T>(token: string, reason: string): T {
    // A token is base64(JSON) followed by a 44-character base64 HMAC.
    const body = token.slice(0, -44);
    const mac = token.slice(-44);
    const expected = createHmac('sha256', this.tokenKey).update(body).digest('base64');
    if (token.length <= 44 || mac !== expected) throw validation('The token is not valid', reason);
    return JSON.parse(Buffer.from(body, 'base64').toString()) as T;
  }

  /** Only completed snapshots can be read through the EBS direct APIs. */
  private readable(region: string, id: string): SnapshotRecord {
    if (!/^snap-[0-9a-f]+$/.test(id)) throw validation(`Invalid snapshot id ${id}`, 'INVALID_SNAPSHOT_ID');
    const record = this.world.snapshots.get(id);
    if (!record || record.region !== region) throw notFound(`The snapshot '${id}' does not exist.`);
    if (record.snapshot.State !== 'completed') {
      throw validation(
        `The snapshot '${id}' is not in the completed state (${record.snapshot.State}).`,
        'INVALID_SNAPSHOT_ID',
      );
    }
    return record;
  }

  private pageSize(query: URLSearchParams): number {
    const raw = query.get('maxResults');
    if (raw === null) return 10000;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1 || n > 10000) {
      throw validation('MaxResults must be between 100 and 10000', 'INVALID_PARAMETER_VALUE');
    }
    // AWS answers at least 100 blocks even when asked for fewer.
    return Math.max(n, 100);
  }

  private startIndex(query: URLSearchParams, kind: string, snapshots: string[]): number {
    const pageToken = query.get('pageToken');
    if (pageToken !== null) {
      const token = this.unsign<{ k: string; s: string[]; i: number; e: number }>(
        pageToken,
        'INVALID_PAGE_TOKEN',
      );
      if (token.k !== kind || token.s.join() !== snapshots.join()) {
        throw validation('The pagination token does not belong to this request', 'INVALID_PAGE_TOKEN');
      }
      if (this.world.now() >= token.e)
        throw validation('The pagination token has expired', 'INVALID_PAGE_TOKEN');
      return token.i;
    }
    const raw = query.get('startingBlockIndex');
    if (raw === null) return 0;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 0)
      throw validation('StartingBlockIndex must be 0 or more', 'INVALID_PARAMETER_VALUE');
    return n;
  }

  private blockToken(snapshotId: string, index: number): string {
    return this.sign({
      k: 'block',
      s: snapshotId,
      i: index,
      e: this.world.now() + this.world.options.blockTokenTtlMs,
    });
  }

  private pageToken(kind: string, snapshots: string[], next: number): string {
    return this.sign({
      k: kind,
      s: snapshots,
      i: next,
      e: this.world.now() + this.world.options.pageTokenTtlMs,
    });
  }

  private expiry(): number {
    return Math.floor((this.world.now() + this.world.options.blockTokenTtlMs) / 1000);
  }

  private listSnapshotBlocks(region: string, id: string, query: URLSearchParams): EbsResponse {
    const record = this.readable(region, id);
    const size = this.pageSize(query);
    const start = this.startIndex(query, 'list', [id]);
    const indices = [...record.blocks.keys()].filter((i) => i >= start).sort((a, b) => a - b);
    const page = indices.slice(0, size);
    const more = indices.length > size;
    return {
      action: 'ListSnapshotBlocks',
      status: 200,
      json: {
        Blocks: page.map((i) => ({ BlockIndex: i, BlockToken: this.blockToken(id, i) })),
        ExpiryTime: this.expiry(),
        VolumeSize: record.snapshot.VolumeSize,
        BlockSize: this.world.options.listBlockSize || BLOCK_SIZE,
        ...(more && { NextToken: this.pageToken('list', [id], page[page.length - 1]! + 1) }),
      },
    };
  }

  private listChangedBlocks(region: string, secondId: string, query: URLSearchParams): EbsResponse {
    const second = this.readable(region, secondId);
    const firstId = query.get('firstSnapshotId');
    const first = firstId === null ? undefined : this.readable(region, firstId);
    if (first && first.lineage !== second.lineage) {
      throw validation(`The snapshots ${firstId} and ${secondId} are not related`, 'UNRELATED_SNAPSHOTS');
    }
    if (first && first.startedAt > second.startedAt) {
      throw validation(
        `The first snapshot ${firstId} must be older than the second snapshot ${secondId}`,
        'INVALID_PARAMETER_VALUE',
      );
    }
    const size = this.pageSize(query);
    const ids = [firstId ?? '', secondId];
    const start = this.startIndex(query, 'changed', ids);
    // Each page scans a fixed window of the index space, so sparse changes give empty pages that
    // still carry a NextToken, as AWS does.
    const totalBlocks = this.world.blocksPerVolume(second.snapshot.VolumeSize ?? 0);
    const windowEnd = Math.min(start + this.world.options.changedBlocksWindow, totalBlocks);
    const candidates = new Set<number>();
    for (const i of second.blocks.keys()) if (i >= start && i < windowEnd) candidates.add(i);
    for (const i of first?.blocks.keys() ?? []) if (i >= start && i < windowEnd) candidates.add(i);
    const changed = [...candidates]
      .filter((i) => first?.blocks.get(i) !== second.blocks.get(i))
      .sort((a, b) => a - b);
    const page = changed.slice(0, size);
    const next =
      changed.length > size ? page[page.length - 1]! + 1 : windowEnd < totalBlocks ? windowEnd : undefined;
    return {
      action: 'ListChangedBlocks',
      status: 200,
      json: {
        ChangedBlocks: page.map((i) => ({
          BlockIndex: i,
          ...(first?.blocks.has(i) && { FirstBlockToken: this.blockToken(firstId!, i) }),
          ...(second.blocks.has(i) && { SecondBlockToken: this.blockToken(secondId, i) }),
        })),
        ExpiryTime: this.expiry(),
        VolumeSize: second.snapshot.VolumeSize,
        BlockSize: this.world.options.listBlockSize || BLOCK_SIZE,
        ...(next !== undefined && { NextToken: this.pageToken('changed', ids, next) }),
      },
    };
  }

  private blockIndex(raw: string, record: SnapshotRecord): number {
    const index = Number(raw);
    if (
      !Number.isInteger(index) ||
      index < 0 ||
      index >= this.world.blocksPerVolume(record.snapshot.VolumeSize ?? 0)
    ) {
      throw validation(`Block index ${raw} is outside the snapshot`, 'INVALID_BLOCK');
    }
    return index;
  }

  private getSnapshotBlock(
    region: string,
    id: string,
    rawIndex: string,
    query: URLSearchParams,
  ): EbsResponse {
    const record = this.readable(region, id);
    const index = this.blockIndex(rawIndex, record);
    const tokenText = query.get('blockToken');
    if (tokenText === null) throw validation('BlockToken is required', 'INVALID_BLOCK_TOKEN');
    const token = this.unsign<{ k: string; s: string; i: number; e: number }>(
      tokenText,
      'INVALID_BLOCK_TOKEN',
    );
    if (token.k !== 'block' || token.s !== id || token.i !== index) {
      throw validation('The block token does not match this snapshot and block', 'INVALID_BLOCK_TOKEN');
    }
    if (this.world.now() >= token.e) throw validation('The block token has expired', 'INVALID_BLOCK_TOKEN');
    const block = record.blocks.get(index);
    if (!block) throw validation(`Block ${index} holds no data in ${id}`, 'INVALID_BLOCK');
    return {
      action: 'GetSnapshotBlock',
      status: 200,
      headers: {
        'x-amz-Data-Length': String(BLOCK_SIZE),
        'x-amz-Checksum': block.sha256().toString('base64'),
        'x-amz-Checksum-Algorithm': 'SHA256',
        'content-type': 'application/octet-stream',
      },
      data: block.data(),
    };
  }

  private startSnapshot(region: string, req: EbsRequest): EbsResponse {
    let input: Record<string, unknown>;
    try {
      input = JSON.parse(req.body.toString() || '{}') as Record<string, unknown>;
    } catch {
      throw validation('The request body is not JSON', 'INVALID_PARAMETER_VALUE');
    }
    const volumeSize = input.VolumeSize;
    if (
      typeof volumeSize !== 'number' ||
      !Number.isInteger(volumeSize) ||
      volumeSize < 1 ||
      volumeSize > 65536
    ) {
      throw validation('VolumeSize must be a whole number of GiB from 1 to 65536', 'INVALID_VOLUME_SIZE');
    }
    const timeout = (input.Timeout as number | undefined) ?? 60;
    if (!Number.isInteger(timeout) || timeout < 10 || timeout > 4320) {
      throw validation('Timeout must be from 10 to 4320 minutes', 'INVALID_PARAMETER_VALUE');
    }
    const clientToken = input.ClientToken as string | undefined;
    const fingerprint = JSON.stringify({ ...input, ClientToken: undefined });
    if (clientToken !== undefined) {
      const earlier = [...this.world.snapshots.values()].find(
        (s) => s.region === region && s.clientToken === clientToken,
      );
      if (earlier) {
        if (earlier.requestFingerprint !== fingerprint) {
          throw new ApiError(
            'ConflictException',
            `ClientToken ${clientToken} was used with different parameters`,
            409,
          );
        }
        return { action: 'StartSnapshot', status: 201, json: this.describeStarted(earlier) };
      }
    }
    const parentId = input.ParentSnapshotId as string | undefined;
    let parent: SnapshotRecord | undefined;
    if (parentId !== undefined) {
      parent = this.world.snapshots.get(parentId);
      if (!parent || parent.region !== region) {
        throw new ApiError(
          'ResourceNotFoundException',
          `The parent snapshot '${parentId}' does not exist.`,
          404,
          {
            Reason: 'DEPENDENCY_RESOURCE_NOT_FOUND',
          },
        );
      }
      if (parent.snapshot.State !== 'completed') {
        throw validation(`The parent snapshot ${parentId} is not completed`, 'INVALID_PARAMETER_VALUE');
      }
      if ((parent.snapshot.VolumeSize ?? 0) > volumeSize) {
        throw validation(
          `The parent snapshot ${parentId} is larger than ${volumeSize} GiB`,
          'INVALID_VOLUME_SIZE',
        );
      }
    }
    const kmsKeyArn = input.KmsKeyArn as string | undefined;
    if (parent !== undefined) {
      // StartSnapshot (EBS direct APIs reference), Encrypted: "You can't specify Encrypted and
      // ParentSnapshotId in the same request. If you specify both parameters, the request fails
      // with ValidationException."
      if (input.Encrypted !== undefined) {
        throw validation(
          "You can't specify Encrypted and ParentSnapshotId in the same request",
          'INVALID_PARAMETER_VALUE',
        );
      }
      // Encryption outcomes for EBS direct APIs (EBS user guide), parent snapshot tables: a key
      // given with a parent fails; the new snapshot takes the parent's encryption and key.
      if (kmsKeyArn !== undefined) {
        throw validation(
          `KmsKeyArn cannot be given with ParentSnapshotId: the snapshot takes the key of ${parentId}`,
          'INVALID_PARAMETER_VALUE',
        );
      }
    }
    // Encryption outcomes for EBS direct APIs (EBS user guide): with encryption by default on,
    // a snapshot without a parent is encrypted whatever Encrypted says, and "If your account is
    // enabled for encryption by default, you cannot use an unencrypted snapshot as a parent
    // snapshot" (StartSnapshot reference, ParentSnapshotId).
    const byDefault = this.world.region(region).encryptionByDefault;
    if (parent !== undefined && byDefault && parent.snapshot.Encrypted !== true) {
      throw validation(
        `The parent snapshot ${parentId} is unencrypted and the account encrypts EBS by default; copy it encrypted first`,
        'INVALID_PARAMETER_VALUE',
      );
    }
    const encrypted =
      parent !== undefined ? parent.snapshot.Encrypted === true : input.Encrypted === true || byDefault;
    // StartSnapshot (EBS direct APIs reference), KmsKeyArn: "If you specify a KmsKeyArn, you must
    // set Encrypted to true."
    if (kmsKeyArn !== undefined && input.Encrypted !== true) {
      throw validation('KmsKeyArn needs Encrypted=true', 'INVALID_PARAMETER_VALUE');
    }
    // KmsKeyArn (EBS API reference, KmsKeyArn shape): "Pattern: arn:aws[a-z\-]*:kms:.*:[0-9]{12}:key/.*",
    // 1 to 2048 characters: a key ARN, never an alias ARN.
    if (
      kmsKeyArn !== undefined &&
      (kmsKeyArn.length > 2048 || !/^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/.+$/.test(kmsKeyArn))
    ) {
      throw validation(`KmsKeyArn ${kmsKeyArn} is not a KMS key ARN`, 'INVALID_CUSTOMER_KEY');
    }
    checkStartLimits(input);
    const tags = (input.Tags as Tag[] | undefined) ?? [];
    const now = this.world.now();
    const id = newId('snap');
    const record: SnapshotRecord = {
      region,
      snapshot: {
        ...pendingSnapshot({
          volumeId: 'vol-ffffffff',
          sizeGiB: volumeSize,
          description: (input.Description as string | undefined) ?? '',
          encrypted,
          kmsKeyId:
            parent?.snapshot.KmsKeyId ?? kmsKeyArn ?? `arn:aws:kms:${region}:${ACCOUNT_ID}:alias/aws/ebs`,
          tags,
          now,
        }),
        SnapshotId: id,
      },
      blocks: new Map(parent?.blocks ?? []),
      lineage: parent?.lineage ?? id,
      ...(parentId !== undefined && { parentSnapshotId: parentId }),
      origin: 'direct',
      startedAt: now,
      deadline: now + timeout * 60_000,
      ...(clientToken !== undefined && { clientToken }),
      requestFingerprint: fingerprint,
    };
    this.world.snapshots.set(id, record);
    this.sessions.set(id, { written: new Set() });
    return { action: 'StartSnapshot', status: 201, json: this.describeStarted(record) };
  }

  private describeStarted(record: SnapshotRecord): Record<string, unknown> {
    const s = record.snapshot;
    return {
      SnapshotId: s.SnapshotId,
      OwnerId: ACCOUNT_ID,
      Status: s.State,
      StartTime: Math.floor((s.StartTime?.getTime() ?? 0) / 1000),
      VolumeSize: s.VolumeSize,
      BlockSize: BLOCK_SIZE,
      Description: s.Description,
      Tags: s.Tags,
      ...(record.parentSnapshotId !== undefined && { ParentSnapshotId: record.parentSnapshotId }),
      ...(s.KmsKeyId !== undefined && { KmsKeyArn: s.KmsKeyId }),
      SseType: s.Encrypted ? 'sse-kms' : 'none',
    };
  }

  private writable(region: string, id: string): SnapshotRecord {
    const record = this.world.snapshots.get(id);
    // Right after StartSnapshot the snapshot is not yet visible to the data plane (eventual consistency).
    if (
      !record ||
      record.region !== region ||
      this.world.now() < record.startedAt + this.world.options.startDelayMs
    ) {
      throw notFound(`The snapshot '${id}' does not exist.`);
    }
    if (record.origin !== 'direct' || record.snapshot.State !== 'pending' || record.readyAt !== undefined) {
      throw validation(
        `The snapshot ${id} is not open for writes (${record.snapshot.State})`,
        'INVALID_SNAPSHOT_ID',
      );
    }
    return record;
  }

  private header(req: EbsRequest, name: string): string | undefined {
    const value = req.headers[name.toLowerCase()];
    return Array.isArray(value) ? value[0] : value;
  }

  private putSnapshotBlock(region: string, id: string, rawIndex: string, req: EbsRequest): EbsResponse {
    const record = this.writable(region, id);
    const index = this.blockIndex(rawIndex, record);
    const length = Number(this.header(req, 'x-amz-Data-Length'));
    if (length !== BLOCK_SIZE || req.body.length !== BLOCK_SIZE) {
      throw validation(`DataLength must be ${BLOCK_SIZE} and match the body`, 'INVALID_BLOCK');
    }
    if (this.header(req, 'x-amz-Checksum-Algorithm') !== 'SHA256') {
      throw validation('ChecksumAlgorithm must be SHA256', 'INVALID_PARAMETER_VALUE');
    }
    const digest = bodySha256(req.body);
    const checksum = digest.toString('base64');
    if (this.header(req, 'x-amz-Checksum') !== checksum) {
      throw validation(`The checksum of block ${index} does not match its data`, 'INVALID_PARAMETER_VALUE');
    }
    // The body is a buffer of this request's own (the server concatenated its chunks into it):
    // kept as the block, with its digest, rather than copied.
    record.blocks.set(index, Block.fromData(req.body, digest));
    this.sessions.get(id)?.written.add(index);
    return {
      action: 'PutSnapshotBlock',
      status: 201,
      headers: { 'x-amz-Checksum': checksum, 'x-amz-Checksum-Algorithm': 'SHA256' },
      json: {},
    };
  }

  private completeSnapshot(region: string, id: string, req: EbsRequest): EbsResponse {
    const record = this.world.snapshots.get(id);
    if (!record || record.region !== region) throw notFound(`The snapshot '${id}' does not exist.`);
    if (record.origin !== 'direct')
      throw validation(`The snapshot ${id} was not started with StartSnapshot`, 'INVALID_SNAPSHOT_ID');
    if (record.snapshot.State === 'error')
      throw validation(`The snapshot ${id} is in the error state`, 'INVALID_SNAPSHOT_ID');
    if (record.readyAt !== undefined) {
      return { action: 'CompleteSnapshot', status: 202, json: { Status: record.snapshot.State } };
    }
    const session = this.sessions.get(id)!;
    const countText = this.header(req, 'x-amz-ChangedBlocksCount');
    const count = Number(countText);
    if (countText === undefined || !Number.isInteger(count) || count < 0) {
      throw validation('ChangedBlocksCount is required', 'INVALID_PARAMETER_VALUE');
    }
    // CompleteSnapshot answers 202 and a pending status: AWS seals the snapshot afterwards, and a
    // count or checksum that does not match what was written ends it in `error` (the snapshot's
    // StateMessage says why), not in a refusal of the call.
    let failure: string | undefined;
    if (count !== session.written.size) {
      failure = `ChangedBlocksCount ${count} does not match the ${session.written.size} blocks written to ${id}`;
    }
    const checksum = this.header(req, 'x-amz-Checksum');
    if (checksum !== undefined) {
      if (
        this.header(req, 'x-amz-Checksum-Algorithm') !== 'SHA256' ||
        this.header(req, 'x-amz-Checksum-Aggregation-Method') !== 'LINEAR'
      ) {
        throw validation(
          'Checksum needs ChecksumAlgorithm=SHA256 and ChecksumAggregationMethod=LINEAR',
          'INVALID_PARAMETER_VALUE',
        );
      }
      const aggregate = createHash('sha256');
      for (const i of [...session.written].sort((a, b) => a - b))
        aggregate.update(record.blocks.get(i)!.sha256());
      if (aggregate.digest('base64') !== checksum) {
        failure ??= `The aggregate checksum does not match the blocks written to ${id}`;
      }
    }
    record.readyAt = this.world.now() + this.world.options.pendingMs;
    if (failure !== undefined) record.failure = failure;
    this.sessions.delete(id);
    return { action: 'CompleteSnapshot', status: 202, json: { Status: 'pending' } };
  }
}
