import { RuntimeFailure } from '../errors.js';

/**
 * What is wrong with a stream:
 * - `truncated`: it stops early (empty, cut inside a member, no end marker), as a failed or
 *   cancelled backup leaves it, rather than holding wrong data;
 * - `invalid`: its structure is not what ec2-bpipe writes (a header field, a member name or
 *   order, a JSON field);
 * - `damaged`: it is well formed, but a checksum does not match what it holds.
 */
export type DefectKind = 'truncated' | 'invalid' | 'damaged';

/** A stream that is not a complete, intact ec2-bpipe stream. The message names the member and what is wrong. */
export class StreamDefect extends RuntimeFailure {
  constructor(
    source: string,
    message: string,
    readonly kind: DefectKind,
  ) {
    super(`${source}: ${message}`);
    this.name = 'StreamDefect';
  }

  /** Whether the stream was cut short, as a failed backup leaves it. */
  get incomplete(): boolean {
    return this.kind === 'truncated';
  }
}
