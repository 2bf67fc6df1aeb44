/**
 * Point records read back from the state directory are hostile input: whatever bytes a file
 * holds, reading it gives a record of the job its name says, or a RuntimeFailure naming the
 * file, never another error.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RuntimeFailure } from '../../src/errors.js';
import { newFinalizer } from '../../src/format/finalizer.js';
import { parsePointRecord } from '../../src/format/point-record.js';

const record = newFinalizer({
  config: 'web',
  job: 'web-2',
  head: 'web-2',
  headLevel: 'Incremental',
  region: 'us-east-1',
  kind: 'volumes',
  resourceId: 'vol-0123456789abcdef0',
  createdAt: '2026-12-06T07:00:00.000Z',
  instance: null,
  volumes: [
    {
      volumeId: 'vol-0123456789abcdef0',
      snapshotId: 'snap-0123456789abcdef0',
      deviceName: null,
      deleteOnTermination: null,
      sizeGiB: 1,
      sizeBytes: 2 ** 30,
      blockSize: 524288,
      level: 'Incremental',
      baseSnapshotId: null,
      baseJob: null,
      blockCount: 3,
      volumeType: 'gp3',
      iops: 3000,
      throughput: 125,
      encrypted: false,
      kmsKeyId: null,
      availabilityZone: 'us-east-1a',
      tags: [],
    },
  ],
});
const bytes = Buffer.from(JSON.stringify(record));

describe('a point record read back', () => {
  it('is taken when it is the record of the job and config its path names', () => {
    expect(parsePointRecord(bytes, 'web-2.json', 'web', 'web-2').head).toBe('web-2');
  });

  it("is refused, naming the file, when it says another job's or config's", () => {
    expect(() => parsePointRecord(bytes, '/s/web-3.json', 'web', 'web-3')).toThrow(
      /\/s\/web-3\.json: not the point record of job web-3 of config web/,
    );
    expect(() => parsePointRecord(bytes, 'web-2.json', 'db', 'web-2')).toThrow(RuntimeFailure);
  });

  it('gives a record or a RuntimeFailure for any bytes, and for any edit of a real record', () => {
    const onlyRuntimeFailures = (input: Buffer): void => {
      try {
        parsePointRecord(input, 'x.json', 'web', 'web-2');
      } catch (err) {
        expect(err).toBeInstanceOf(RuntimeFailure);
      }
    };
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (raw) => onlyRuntimeFailures(Buffer.from(raw))),
      { seed: 27 },
    );
    fc.assert(
      fc.property(fc.nat(bytes.length - 1), fc.integer({ min: 0, max: 255 }), (at, value) => {
        const edited = Buffer.from(bytes);
        edited[at] = value;
        onlyRuntimeFailures(edited);
      }),
      { seed: 27, numRuns: 500 },
    );
  });
});
