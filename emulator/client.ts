/** A client of the emulator's admin API (README.md), for tests, the demo and the bench. */
/** One resource as the admin API's state lists it, shaped like EC2's Describe* output. */
export type AdminRecord = Record<string, any>;

export class Admin {
  constructor(private readonly url: string) {}

  async call<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await fetch(`${this.url}/_admin/${path}`, {
      method,
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`admin ${method} ${path}: ${response.status} ${text}`);
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
