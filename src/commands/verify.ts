import { RuntimeFailure } from '../errors.js';
import { streamInputs } from '../inputs.js';
import type { Manifest } from '../format/members.js';
import { readStream, type VolumeReport, warnFormat1 } from '../stream/reader.js';
import type { CommandContext } from './context.js';
import type { VerifyOptions } from './options.js';

/** What `verify --json` says of one stream (docs/JSON.md). */
interface StreamVerdict {
  stream: string;
  ok: boolean;
  error?: string;
  job?: string;
  level?: string;
  config?: string;
  region?: string;
  resourceId?: string;
  baseJob?: string | null;
  createdAt?: string;
  formatVersion?: number;
  volumes?: VolumeReport[];
}

/**
 * The chain order of the streams given, as a restore applies them: per unit, a link must be based
 * on the stream of that unit given just before it, and no stream may come after a link built on
 * it. Returns the reason a stream is out of order, or undefined.
 */
class ChainOrder {
  /** Per unit, the last stream given and the jobs that earlier links were based on. */
  private readonly units = new Map<
    string,
    { last: { job: string; stream: string }; bases: Map<string, string> }
  >();

  check(manifest: Manifest, stream: string): string | undefined {
    const key = `${manifest.config}/${manifest.region}/${manifest.resourceId}`;
    const unit = this.units.get(key);
    const later = unit?.bases.get(manifest.job);
    const previous = unit?.last;
    let reason: string | undefined;
    if (later !== undefined) {
      reason = `job ${manifest.job} is the base of ${later}, given before it: give the streams of ${manifest.resourceId} oldest first, as a restore applies them`;
    } else if (manifest.level !== 'Full' && previous !== undefined && manifest.baseJob !== previous.job) {
      reason =
        `job ${manifest.job} (${manifest.level}) is based on job ${manifest.baseJob ?? '?'}, but the stream of ${manifest.resourceId} ` +
        `given before it is ${previous.stream} (job ${previous.job}): a restore in this order would refuse it`;
    }
    const bases = unit?.bases ?? new Map<string, string>();
    if (manifest.baseJob !== null && !bases.has(manifest.baseJob)) bases.set(manifest.baseJob, stream);
    this.units.set(key, { last: { job: manifest.job, stream }, bases });
    return reason;
  }
}

/**
 * `ec2-bpipe verify`: checks streams offline (structure, every block digest, aggregates, end
 * marker) and, given several, their chain order; prints one line per volume, or one JSON object.
 */
export async function verifyCommand(ctx: CommandContext, { files, json }: VerifyOptions): Promise<void> {
  const verdicts: StreamVerdict[] = [];
  const order = new ChainOrder();
  const say = (line: string): void => {
    if (!json) ctx.stdout.write(`${line}\n`);
  };
  for (const input of await streamInputs(files, ctx.stdin)) {
    try {
      // verify reads format 1 and says what it cannot prove; restores need --accept-format-1.
      const report = await readStream(await input.open(), input.name, {}, { acceptFormat1: true });
      const m = report.manifest;
      for (const v of report.volumes) {
        say(
          `ok ${input.name} ${m.resourceId} ${v.volumeId} ${m.level} job=${m.job} blocks=${v.blocks} ` +
            `bytes=${v.sizeBytes} sha256-linear=${v.checksum}` +
            (v.indexedSha256 === null ? '' : ` sha256-indexed=${v.indexedSha256}`),
        );
      }
      warnFormat1(ctx.log, input.name, report.formatVersion);
      const outOfOrder = order.check(m, input.name);
      const verdict: StreamVerdict = {
        stream: input.name,
        ok: outOfOrder === undefined,
        ...(outOfOrder !== undefined && { error: `${input.name}: ${outOfOrder}` }),
        job: m.job,
        level: m.level,
        config: m.config,
        region: m.region,
        resourceId: m.resourceId,
        baseJob: m.baseJob,
        createdAt: m.createdAt,
        formatVersion: report.formatVersion,
        volumes: report.volumes,
      };
      verdicts.push(verdict);
      if (verdict.error !== undefined) say(`FAILED ${verdict.error}`);
      else
        ctx.log.info(`${input.name}: complete and intact (${report.volumes.length} volume(s), job ${m.job})`);
    } catch (err) {
      if (!(err instanceof RuntimeFailure)) throw err;
      say(`FAILED ${err.message}`);
      verdicts.push({ stream: input.name, ok: false, error: err.message });
    }
  }
  const failures = verdicts.flatMap((v) => (v.error === undefined ? [] : [v.error]));
  if (json) ctx.stdout.write(`${JSON.stringify({ ok: failures.length === 0, streams: verdicts })}\n`);
  if (failures.length)
    throw new RuntimeFailure(`${failures.length} stream(s) failed verification: ${failures.join('; ')}`);
}
