/** A client of the emulator's admin API (README.md), for tests, the demo and the bench. */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

/** One resource as the admin API's state lists it, shaped like EC2's Describe* output. */
export type AdminRecord = Record<string, any>;

export class Admin {
  /** `caPem`: the CA of an emulator served over HTTPS with a test certificate. */
  constructor(
    private readonly url: string,
    private readonly caPem?: string,
  ) {}

  async call<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> {
    const target = new URL(`${this.url}/_admin/${path}`);
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = send(target, { method, ...(this.caPem !== undefined && { ca: this.caPem }) }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body !== undefined ? JSON.stringify(body) : undefined);
    });
    if (status < 200 || status > 299) throw new Error(`admin ${method} ${path}: ${status} ${text}`);
    return JSON.parse(text) as T;
  }

  instance(body: Record<string, unknown>): Promise<{ instanceId: string; volumeIds: string[] }> {
    return this.call('POST', 'instances', body);
  }

  volume(body: Record<string, unknown>): Promise<{ volumeId: string }> {
    return this.call('POST', 'volumes', body);
  }

  snapshotDigest(id: string): Promise<{ digest: string; blocks: number }> {
    return this.call('GET', `snapshots/${id}/digest`);
  }

  volumeDigest(id: string): Promise<{ digest: string; blocks: number }> {
    return this.call('GET', `volumes/${id}/digest`);
  }

  /** Moves the emulator's clock on: pending resources, tokens and credentials age at once. */
  advance(ms: number): Promise<{ now: string }> {
    return this.call('POST', 'clock', { advanceMs: ms });
  }

  requests(): Promise<Record<string, number>> {
    return this.call('GET', 'requests');
  }

  state(): Promise<{
    instances: AdminRecord[];
    volumes: AdminRecord[];
    snapshots: AdminRecord[];
    images: AdminRecord[];
  }> {
    return this.call('GET', 'state');
  }
}
