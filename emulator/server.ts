import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { prng } from './blocks.js';
import { AdminApi } from './admin.js';
import { EBS_ERRORS, ebsError, EbsService, type EbsResponse } from './ebs.js';
import { presignedUrlProblem } from './presign.js';
import { decodeQuery, encodeError, encodeResponse, operation, UnknownParameterError } from './ec2-codec.js';
import { Ec2Service } from './ec2.js';
import { type AuthFailure, type KeyRecord, scopeOf, verifySignature } from './sigv4.js';
import { ACCOUNT_ID, ApiError, defaultOptions, type EmulatorOptions, World } from './state.js';

export interface Emulator {
  url: string;
  port: number;
  world: World;
  options: EmulatorOptions;
  /**
   * Another port of the same emulator that serves only `services` (by the SigV4 scope: `ec2`,
   * `ebs`, `sts`, `kms`, `iam`) and answers anything else 404, as a VPC endpoint serves its one
   * service: a test proves each service's calls went to its own endpoint. Returns its URL.
   */
  servePort(services: string[]): Promise<string>;
  close(): Promise<void>;
}

/** A certificate and key (PEM) to serve HTTPS with, as the tests generate them. */
export interface EmulatorTls {
  key: string;
  cert: string;
  /** The CA that signed `cert`, for the admin client. */
  caPem?: string;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

const STS_NS = 'https://sts.amazonaws.com/doc/2011-06-15/';
const IAM_NS = 'https://iam.amazonaws.com/doc/2010-05-08/';

/** Maps a signature failure to the error each service's protocol uses. */
function authError(service: string, failure: AuthFailure): ApiError {
  const byService: Record<string, Record<AuthFailure['kind'], [string, number]>> = {
    ec2: {
      missing: ['MissingAuthenticationToken', 401],
      'unknown-key': ['AuthFailure', 401],
      'bad-signature': ['AuthFailure', 401],
      'expired-token': ['RequestExpired', 400],
      skewed: ['RequestExpired', 400],
    },
    ebs: {
      missing: ['MissingAuthenticationTokenException', 403],
      'unknown-key': ['UnrecognizedClientException', 403],
      'bad-signature': ['InvalidSignatureException', 403],
      'expired-token': ['ExpiredTokenException', 403],
      skewed: ['InvalidSignatureException', 403],
    },
    iam: {
      missing: ['MissingAuthenticationToken', 403],
      'unknown-key': ['InvalidClientTokenId', 403],
      'bad-signature': ['SignatureDoesNotMatch', 403],
      'expired-token': ['ExpiredToken', 400],
      skewed: ['SignatureDoesNotMatch', 403],
    },
    sts: {
      missing: ['MissingAuthenticationToken', 403],
      'unknown-key': ['InvalidClientTokenId', 403],
      'bad-signature': ['SignatureDoesNotMatch', 403],
      'expired-token': ['ExpiredToken', 400],
      skewed: ['SignatureDoesNotMatch', 403],
    },
  };
  const [code, status] = (byService[service] ?? byService.ebs!)[failure.kind];
  return new ApiError(code, failure.message, status);
}

export async function startEmulator(
  overrides: Partial<EmulatorOptions> = {},
  port = 0,
  tls?: EmulatorTls,
): Promise<Emulator> {
  const options: EmulatorOptions = { ...defaultOptions(), ...overrides };
  const world = new World(options);
  const ec2 = new Ec2Service(world);
  const ebs = new EbsService(world);
  const admin = new AdminApi(world, options);
  const tempKeys = new Map<string, KeyRecord>();
  let bandwidthFreeAt = 0;
  // Faults come from one seeded generator, never Math.random, so a failing run replays.
  const next = prng(options.seed);
  const random = (): number => next() / 2 ** 32;

  const keys = (): Map<string, KeyRecord> => {
    const all = new Map<string, KeyRecord>(tempKeys);
    for (const [id, secret] of Object.entries(options.keys)) all.set(id, { secretAccessKey: secret });
    return all;
  };

  // The EBS direct APIs have request-rate quotas per account and Region, per API (GetSnapshotBlock,
  // PutSnapshotBlock, ...), and answer RequestThrottledException above them ("Amazon EBS endpoints
  // and quotas", AWS General Reference, docs.aws.amazon.com/general/latest/gr/ebs-service.html; the
  // exception's reasons, EBS API reference "Errors"). A token bucket per block API stands for it:
  // `blockRequestsPerSecond` tokens a second, a tenth of a second's worth of burst.
  const buckets = new Map<string, { tokens: number; at: number }>();
  function withinRate(action: string): boolean {
    const rate = options.blockRequestsPerSecond;
    if (rate <= 0 || (action !== 'GetSnapshotBlock' && action !== 'PutSnapshotBlock')) return true;
    const burst = Math.max(1, rate / 10);
    const now = Date.now();
    const bucket = buckets.get(action) ?? { tokens: burst, at: now };
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) / 1000) * rate);
    bucket.at = now;
    buckets.set(action, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** Delays a transfer of `bytes` so the aggregate rate stays under the cap. */
  async function bandwidth(bytes: number): Promise<void> {
    if (options.bandwidthMbps <= 0) return;
    const bytesPerMs = (options.bandwidthMbps * 1_000_000) / 8 / 1000;
    const now = Date.now();
    bandwidthFreeAt = Math.max(bandwidthFreeAt, now) + bytes / bytesPerMs;
    await sleep(bandwidthFreeAt - now);
  }

  function sendEbs(res: ServerResponse, response: EbsResponse): void {
    const headers: Record<string, string> = { ...response.headers };
    let body: Buffer;
    if (response.data) {
      body = response.data;
    } else {
      body = Buffer.from(JSON.stringify(response.json ?? {}));
      headers['content-type'] = 'application/json';
    }
    headers['x-amzn-requestid'] = randomUUID();
    res.writeHead(response.status, { ...headers, 'content-length': String(body.length) });
    res.end(body);
  }

  function sendError(res: ServerResponse, service: string, err: ApiError): void {
    const requestId = randomUUID();
    if (service === 'ec2') {
      const status =
        err.code === 'RequestLimitExceeded'
          ? 503
          : err.status >= 500 || [401, 403, 412].includes(err.status)
            ? err.status
            : 400;
      res.writeHead(status, { 'content-type': 'text/xml;charset=UTF-8' });
      res.end(encodeError(err.code, err.message, requestId));
    } else if (service === 'sts' || service === 'iam') {
      res.writeHead(err.status, { 'content-type': 'text/xml' });
      res.end(
        `<ErrorResponse xmlns="${service === 'iam' ? IAM_NS : STS_NS}"><Error><Type>Sender</Type><Code>${err.code}</Code>` +
          `<Message>${err.message}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`,
      );
    } else {
      res.writeHead(err.status, {
        'content-type': 'application/json',
        'x-amzn-errortype': err.code,
        'x-amzn-requestid': requestId,
      });
      res.end(JSON.stringify({ message: err.message, ...err.extra }));
    }
  }

  function assumeRole(params: URLSearchParams, callerKey: string): string {
    const roleArn = params.get('RoleArn') ?? '';
    const sessionName = params.get('RoleSessionName') ?? '';
    if (!/^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]+$/.test(roleArn)) {
      throw new ApiError('ValidationError', `RoleArn ${roleArn} is not a role ARN`, 400);
    }
    if (!/^[\w+=,.@-]{2,64}$/.test(sessionName)) {
      throw new ApiError('ValidationError', 'RoleSessionName must be 2 to 64 characters of [\\w+=,.@-]', 400);
    }
    const asked = Number(params.get('DurationSeconds') ?? 3600);
    if (!Number.isInteger(asked) || asked < 900 || asked > 43200) {
      throw new ApiError('ValidationError', 'DurationSeconds must be from 900 to 43200', 400);
    }
    const lifetime = options.stsDurationS > 0 ? options.stsDurationS : asked;
    const accessKeyId = `ASIA${randomBytes(8).toString('hex').toUpperCase()}`;
    const secretAccessKey = randomBytes(20).toString('base64');
    const sessionToken = randomBytes(48).toString('base64');
    const expiresAt = world.now() + lifetime * 1000;
    const role = roleArn.split('/').pop()!;
    const arn = `arn:aws:sts::${ACCOUNT_ID}:assumed-role/${role}/${sessionName}`;
    tempKeys.set(accessKeyId, { secretAccessKey, sessionToken, expiresAt, arn });
    world.count('sts:AssumeRole');
    return (
      `<AssumeRoleResponse xmlns="${STS_NS}"><AssumeRoleResult><Credentials>` +
      `<AccessKeyId>${accessKeyId}</AccessKeyId><SecretAccessKey>${secretAccessKey}</SecretAccessKey>` +
      `<SessionToken>${sessionToken}</SessionToken><Expiration>${new Date(expiresAt).toISOString()}</Expiration>` +
      `</Credentials><AssumedRoleUser><AssumedRoleId>AROA${callerKey.length}:${sessionName}</AssumedRoleId>` +
      `<Arn>${arn}</Arn></AssumedRoleUser>` +
      `</AssumeRoleResult><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></AssumeRoleResponse>`
    );
  }

  /** Who signed with `accessKeyId`: an IAM user for a long-term key, the role session for a temporary one. */
  function callerArn(accessKeyId: string): string {
    return tempKeys.get(accessKeyId)?.arn ?? `arn:aws:iam::${ACCOUNT_ID}:user/emulator`;
  }

  /**
   * Refuses an action the caller's policy lacks (`deniedActions`), as each service does: EC2
   * UnauthorizedOperation (HTTP 403), the EBS direct APIs and KMS AccessDeniedException (HTTP 403;
   * the EBS reason UNAUTHORIZED_ACCOUNT, EBS API reference "Errors"), STS AccessDenied.
   */
  function refuseDenied(
    service: 'ec2' | 'ebs' | 'kms' | 'sts' | 'iam',
    action: string,
    accessKeyId: string,
    answeredBy: 'ec2' | undefined = undefined,
  ): void {
    if (!options.deniedActions.includes(`${service}:${action}`)) return;
    const message = `User: ${callerArn(accessKeyId)} is not authorized to perform: ${service}:${action}`;
    if (service === 'ec2' || answeredBy === 'ec2')
      throw new ApiError(
        'UnauthorizedOperation',
        `You are not authorized to perform this operation. ${message}`,
        403,
      );
    if (service === 'sts' || service === 'iam') throw new ApiError('AccessDenied', message, 403);
    throw new ApiError(
      'AccessDeniedException',
      message,
      403,
      service === 'ebs' ? { Reason: 'UNAUTHORIZED_ACCOUNT' } : {},
    );
  }

  /**
   * GetInstanceProfile (IAM API reference): the profile of that name, or NoSuchEntity (HTTP 404).
   * The role in it is named after the profile.
   */
  function instanceProfile(name: string): string {
    const arn = [...world.instanceProfiles].find(([, n]) => n === name)?.[0];
    if (arn === undefined)
      throw new ApiError('NoSuchEntity', `Instance Profile ${name} cannot be found.`, 404);
    const role = `arn:aws:iam::${ACCOUNT_ID}:role/${name}`;
    return (
      `<GetInstanceProfileResponse xmlns="${IAM_NS}"><GetInstanceProfileResult><InstanceProfile>` +
      `<InstanceProfileId>AIPA${Buffer.from(name).toString('hex').slice(0, 16).toUpperCase()}</InstanceProfileId>` +
      `<Roles><member><Path>/</Path><RoleName>${name}</RoleName><RoleId>AROA${name.length}</RoleId><Arn>${role}</Arn>` +
      `<CreateDate>2026-01-01T00:00:00Z</CreateDate><AssumeRolePolicyDocument>%7B%7D</AssumeRolePolicyDocument></member></Roles>` +
      `<InstanceProfileName>${name}</InstanceProfileName><Path>/</Path><Arn>${arn}</Arn>` +
      `<CreateDate>2026-01-01T00:00:00Z</CreateDate></InstanceProfile></GetInstanceProfileResult>` +
      `<ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></GetInstanceProfileResponse>`
    );
  }

  /** GetCallerIdentity (STS API reference): the account, the caller's ARN and its unique id. */
  function callerIdentity(accessKeyId: string): string {
    world.count('sts:GetCallerIdentity');
    const arn = callerArn(accessKeyId);
    return (
      `<GetCallerIdentityResponse xmlns="${STS_NS}"><GetCallerIdentityResult>` +
      `<Arn>${arn}</Arn><UserId>AIDA${createHash('sha256').update(arn).digest('hex').slice(0, 17).toUpperCase()}</UserId>` +
      `<Account>${ACCOUNT_ID}</Account></GetCallerIdentityResult>` +
      `<ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></GetCallerIdentityResponse>`
    );
  }

  async function handleEbs(
    req: IncomingMessage,
    res: ServerResponse,
    region: string,
    body: Buffer,
    accessKeyId: string,
  ): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://emulator');
    const action = EbsService.actionOf(req.method ?? 'GET', url.pathname) ?? 'Unknown';
    world.count(`ebs:${action}`);
    refuseDenied('ebs', action, accessKeyId);
    if (!withinRate(action) || random() < options.throttleRate) {
      throw new ApiError('RequestThrottledException', 'Rate exceeded', 400, { Reason: 'ACCOUNT_THROTTLED' });
    }
    if (random() < options.errorRate) {
      const codes = options.errorCodes.filter((c) => EBS_ERRORS[c]?.thrownBy.includes(action));
      if (codes.length > 0) throw ebsError(action, codes[Math.floor(random() * codes.length)]!);
    }
    if (action === 'PutSnapshotBlock') await bandwidth(body.length);
    const response = ebs.handle(region, {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: url.searchParams,
      headers: req.headers,
      body,
    });
    if (response.data) {
      await bandwidth(response.data.length);
      if (random() < options.corruptRate) {
        const copy = Buffer.from(response.data);
        copy[Math.floor(random() * copy.length)]! ^= 0xff;
        response.data = copy;
      }
      if (random() < options.resetRate) {
        // Headers and part of the body go out, then the connection dies: the SDK has already
        // returned the response, so only the caller can notice and retry.
        res.writeHead(response.status, {
          ...response.headers,
          'content-length': String(response.data.length),
        });
        res.write(response.data.subarray(0, response.data.length >> 1));
        await sleep(5);
        res.socket?.destroy();
        return;
      }
    }
    sendEbs(res, response);
  }

  /**
   * KMS, JSON 1.1 protocol: only DescribeKey (KMS API reference), by key ARN, key id or alias of
   * the region; an unknown key is NotFoundException.
   */
  function handleKms(
    req: IncomingMessage,
    res: ServerResponse,
    region: string,
    body: Buffer,
    accessKeyId: string,
  ): void {
    const target = String(req.headers['x-amz-target'] ?? '');
    const action = target.replace(/^TrentService\./, '');
    world.count(`kms:${action}`);
    refuseDenied('kms', action, accessKeyId);
    if (target !== 'TrentService.DescribeKey') {
      throw new ApiError('UnknownOperationException', `The emulator does not serve ${target}`, 400);
    }
    const keyId = String((JSON.parse(body.toString() || '{}') as { KeyId?: unknown }).KeyId ?? '');
    const arn = world.kmsKeyArn(region, keyId);
    const key = arn === undefined ? undefined : world.kmsKeys.get(arn);
    if (arn === undefined || key === undefined) {
      throw new ApiError('NotFoundException', `Key '${keyId}' does not exist`, 400);
    }
    res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
    res.end(
      JSON.stringify({
        KeyMetadata: {
          AWSAccountId: ACCOUNT_ID,
          KeyId: arn.split('/').pop(),
          Arn: arn,
          KeyState: key.state,
          Enabled: key.state === 'Enabled',
          KeyUsage: 'ENCRYPT_DECRYPT',
          KeySpec: 'SYMMETRIC_DEFAULT',
          KeyManager: 'CUSTOMER',
        },
      }),
    );
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const url = new URL(req.url ?? '/', 'http://emulator');
    if (url.pathname.startsWith('/_admin/')) {
      let input: Record<string, unknown> = {};
      if (body.length) input = JSON.parse(body.toString()) as Record<string, unknown>;
      const result = admin.handle(req.method ?? 'GET', url.pathname, input);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(result));
      return;
    }
    if (req.socket.remotePort !== undefined) world.peerPorts.add(req.socket.remotePort);
    const scope = scopeOf(req);
    const service = scope?.service ?? 'ebs';
    try {
      if (options.latencyMs > 0) await sleep(options.latencyMs);
      const auth = await verifySignature(req, body, keys(), Date.now(), world.now());
      if (!('accessKeyId' in auth)) throw authError(service, auth);
      if (service === 'ebs') return await handleEbs(req, res, auth.region, body, auth.accessKeyId);
      if (service === 'kms') return handleKms(req, res, auth.region, body, auth.accessKeyId);
      const params = new URLSearchParams(body.toString());
      const action = params.get('Action') ?? '';
      if (service === 'sts') {
        if (action !== 'AssumeRole' && action !== 'GetCallerIdentity')
          throw new ApiError('InvalidAction', `Could not find operation ${action}`, 400);
        // GetCallerIdentity needs no permission: "No permissions are required to perform this
        // operation. If an administrator attaches a policy to your identity that explicitly denies
        // access to the sts:GetCallerIdentity action, you can still perform this operation" (STS API
        // reference, GetCallerIdentity).
        if (action === 'AssumeRole') refuseDenied('sts', action, auth.accessKeyId);
        const xml =
          action === 'AssumeRole' ? assumeRole(params, auth.accessKeyId) : callerIdentity(auth.accessKeyId);
        res.writeHead(200, { 'content-type': 'text/xml' });
        res.end(xml);
        return;
      }
      if (service === 'iam') {
        world.count(`iam:${action}`);
        if (action !== 'GetInstanceProfile')
          throw new ApiError('InvalidAction', `Could not find operation ${action}`, 400);
        refuseDenied('iam', action, auth.accessKeyId);
        const xml = instanceProfile(params.get('InstanceProfileName') ?? '');
        res.writeHead(200, { 'content-type': 'text/xml' });
        res.end(xml);
        return;
      }
      if (service !== 'ec2')
        throw new ApiError('UnknownService', `The emulator does not serve ${service}`, 400);
      world.count(`ec2:${action}`);
      if (random() < options.ec2ThrottleRate)
        throw new ApiError('RequestLimitExceeded', 'Request limit exceeded.', 503);
      const op = operation(action);
      if (!op || params.get('Version') !== '2016-11-15') {
        throw new ApiError('InvalidAction', `The action ${action} is not valid for this web service.`);
      }
      let input: Record<string, unknown>;
      try {
        input = decodeQuery(op, params);
      } catch (err) {
        if (err instanceof UnknownParameterError) {
          throw new ApiError('UnknownParameter', `The parameter ${err.message} is not recognized`);
        }
        throw err;
      }
      // An action the policy lacks is UnauthorizedOperation, HTTP 403 ("Error codes for the Amazon
      // EC2 API"). DryRun "checks whether you have the required permissions for the action, without
      // actually making the request": DryRunOperation (HTTP 412) when it would have been allowed,
      // UnauthorizedOperation otherwise (the DryRun parameter, in every action's reference page).
      // AWS also validates some parameters before it answers a dry run; the emulator checks the
      // permission only, so nothing may take a DryRunOperation for "the request is valid".
      refuseDenied('ec2', action, auth.accessKeyId);
      // RunInstances with an instance profile passes its role: without iam:PassRole EC2 refuses it,
      // a dry run included ("Grant a user permission to pass an IAM role to an instance", IAM
      // user guide).
      if (action === 'RunInstances' && input.IamInstanceProfile !== undefined)
        refuseDenied('iam', 'PassRole', auth.accessKeyId, 'ec2');
      if (input.DryRun === true) {
        throw new ApiError('DryRunOperation', 'Request would have succeeded, but DryRun flag is set.', 412);
      }
      // A PresignedUrl is checked here, where the keys are, and judged by CopySnapshot.
      const presignedUrl = action === 'CopySnapshot' ? input.PresignedUrl : undefined;
      const copyCheck =
        typeof presignedUrl === 'string'
          ? {
              presignedUrlProblem: await presignedUrlProblem(
                {
                  sourceRegion: String(input.SourceRegion),
                  sourceSnapshotId: String(input.SourceSnapshotId),
                  destinationRegion: auth.region,
                  presignedUrl,
                },
                keys(),
              ),
            }
          : {};
      const output = ec2.handle(action, auth.region, input, copyCheck);
      res.writeHead(200, { 'content-type': 'text/xml;charset=UTF-8' });
      res.end(encodeResponse(action, op, output, randomUUID()));
    } catch (err) {
      if (err instanceof ApiError) return sendError(res, service, err);
      throw err;
    }
  }

  const answer = (req: IncomingMessage, res: ServerResponse): void => {
    route(req, res).catch((err: unknown) => {
      if (!res.headersSent) {
        const message = err instanceof Error ? err.message : String(err);
        res.writeHead(err instanceof ApiError ? err.status : 500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ message }));
      }
    });
  };
  const servers: Server[] = [];
  const listen = async (
    handler: (req: IncomingMessage, res: ServerResponse) => void,
    at: number,
  ): Promise<{ url: string; port: number }> => {
    const server: Server =
      tls === undefined
        ? createServer(handler)
        : createHttpsServer({ key: tls.key, cert: tls.cert }, handler);
    server.keepAliveTimeout = 30_000;
    await new Promise<void>((resolve) => server.listen(at, '127.0.0.1', resolve));
    servers.push(server);
    const bound = (server.address() as AddressInfo).port;
    return { url: `${tls === undefined ? 'http' : 'https'}://127.0.0.1:${bound}`, port: bound };
  };
  const main = await listen(answer, port);
  return {
    url: main.url,
    port: main.port,
    world,
    options,
    servePort: async (services) =>
      (
        await listen((req, res) => {
          const service = scopeOf(req)?.service;
          if (service === undefined || !services.includes(service)) {
            res.writeHead(404, { 'content-type': 'application/json' });
            res.end(
              JSON.stringify({
                message: `this endpoint serves ${services.join(', ')}, not ${service ?? 'this request'}`,
              }),
            );
            return;
          }
          answer(req, res);
        }, 0)
      ).url,
    close: () =>
      Promise.all(
        servers.map(
          (server) =>
            new Promise<void>((resolve) => {
              server.closeAllConnections();
              server.close(() => resolve());
            }),
        ),
      ).then(() => undefined),
  };
}
