/**
 * How this host's requests reach AWS: which certificates vouch for an endpoint, and which proxy,
 * if any, carries each request.
 *
 * - CA bundle: `[aws] ca-bundle`, else the SDK's `AWS_CA_BUNDLE`: a PEM file that replaces the
 *   system's certificate authorities, as the AWS CLI's `ca_bundle` does. A TLS-inspecting gateway
 *   re-signs AWS's certificates with its own CA: that CA is the bundle.
 * - Proxy: `[aws] proxy` carries every request; else `HTTPS_PROXY`/`HTTP_PROXY` (and lower-case)
 *   with `NO_PROXY`, decided per request, since one command reaches several hosts (EC2, EBS, STS,
 *   KMS) and a host reached through a VPC endpoint may be listed in NO_PROXY. A proxied request
 *   is tunnelled with CONNECT, so TLS runs end to end and the bundle still applies.
 *
 * The SDK (v3) reads neither proxy variable itself: without this, a host that only reaches the
 * internet through a proxy could not run a job.
 */
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent, type AgentOptions, type ClientRequest } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { Agent as ProxyingAgent, type AgentConnectOpts } from 'agent-base';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { getProxyForUrl } from 'proxy-from-env';
import type { AwsSettings } from '../config.js';
import { UsageError } from '../errors.js';

export interface Transport {
  /**
   * Carry every request of a command's clients: with a proxy configured, agents that decide per
   * request whether to proxy; without, Node's own.
   */
  agents: Agents;
  /** For `doctor` and the log: where the CA bundle and the proxy come from, never a password. */
  caBundle?: { file: string; from: string };
  proxy?: { url: string; from: string };
}

/** A proxy URL as a log may show it: its password, and its user, replaced. */
export function redactedProxy(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.username !== '' || parsed.password !== '') {
      parsed.username = '***';
      parsed.password = '';
    }
    return parsed.href.replace(/\/$/, '');
  } catch {
    return '(not a URL)';
  }
}

function caBundle(
  aws: AwsSettings,
  env: NodeJS.ProcessEnv,
): { file: string; from: string; pem: Buffer } | undefined {
  const [file, from] =
    aws.caBundle !== undefined
      ? [aws.caBundle, '[aws] ca-bundle']
      : env.AWS_CA_BUNDLE
        ? [env.AWS_CA_BUNDLE, 'AWS_CA_BUNDLE']
        : [undefined, ''];
  if (file === undefined) return undefined;
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new UsageError(
      `${from} ${file} cannot be read (${code}): give a PEM file of certificate authorities.`,
    );
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new UsageError(`${from} ${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----).`);
  }
  return { file, from, pem };
}

/**
 * A CONNECT tunnel whose TLS to AWS, inside it, verifies with the bundle: https-proxy-agent
 * takes the target's TLS options from the request, which knows no bundle.
 */
class Tunnel extends HttpsProxyAgent<string> {
  constructor(
    proxy: string,
    private readonly tls: AgentOptions & { ca?: Buffer },
  ) {
    super(proxy, tls);
  }

  override connect(
    req: ClientRequest,
    opts: AgentConnectOpts,
  ): ReturnType<HttpsProxyAgent<string>['connect']> {
    return super.connect(
      req,
      opts.secureEndpoint && this.tls.ca !== undefined ? { ...opts, ca: this.tls.ca } : opts,
    );
  }
}

/** Where one protocol's requests go: an agent for `http:` and one for `https:`. */
export interface Agents {
  http: HttpAgent;
  https: HttpAgent;
}

/**
 * An agent that sends each request of one protocol straight to AWS, or tunnels it through the
 * proxy the settings choose for its URL. Connections are pooled by the inner agents, one per
 * route. Used only when a proxy is configured: without one, the plain agents carry every request.
 */
export class AwsAgent extends ProxyingAgent {
  private readonly direct: HttpAgent;
  private readonly tunnels = new Map<string, Tunnel>();

  constructor(
    secure: boolean,
    private readonly routeOptions: AgentOptions & { ca?: Buffer },
    private readonly proxyFor: (url: string) => string,
  ) {
    super({ keepAlive: true });
    this.direct = secure ? new HttpsAgent(routeOptions) : new HttpAgent(routeOptions);
    // Node reads an agent's protocol on every request; agent-base, not told, works it out from a
    // stack trace taken each time, which cost 0.4 CPU s per GiB of blocks (docs/PERFORMANCE.md).
    this.protocol = secure ? 'https:' : 'http:';
  }

  override connect(_req: ClientRequest, opts: AgentConnectOpts): HttpAgent {
    const url = `${opts.secureEndpoint ? 'https' : 'http'}://${opts.host ?? 'localhost'}:${opts.port}`;
    const proxy = this.proxyFor(url);
    if (proxy === '') return this.direct;
    let tunnel = this.tunnels.get(proxy);
    if (tunnel === undefined) {
      tunnel = new Tunnel(proxy, this.routeOptions);
      this.tunnels.set(proxy, tunnel);
    }
    return tunnel;
  }

  override destroy(): void {
    this.direct.destroy();
    for (const tunnel of this.tunnels.values()) tunnel.destroy();
    super.destroy();
  }
}

/** The transport of one command's clients; `sockets` bounds the connections per route. */
export function transport(
  aws: AwsSettings,
  sockets: number,
  env: NodeJS.ProcessEnv = process.env,
): Transport {
  const ca = caBundle(aws, env);
  const options = { keepAlive: true, maxSockets: sockets, ...(ca !== undefined && { ca: ca.pem }) };
  const explicit = aws.proxy;
  const fromEnv = env.HTTPS_PROXY ?? env.https_proxy ?? env.HTTP_PROXY ?? env.http_proxy;
  const proxyFor = explicit !== undefined ? () => explicit : (url: string) => getProxyForUrl(url);
  const agents: Agents =
    explicit === undefined && !fromEnv
      ? { http: new HttpAgent(options), https: new HttpsAgent(options) }
      : { http: new AwsAgent(false, options, proxyFor), https: new AwsAgent(true, options, proxyFor) };
  return {
    agents,
    ...(ca !== undefined && { caBundle: { file: ca.file, from: ca.from } }),
    ...(explicit !== undefined
      ? { proxy: { url: redactedProxy(explicit), from: '[aws] proxy' } }
      : fromEnv
        ? { proxy: { url: redactedProxy(fromEnv), from: 'HTTPS_PROXY/HTTP_PROXY (NO_PROXY applies)' } }
        : {}),
  };
}
