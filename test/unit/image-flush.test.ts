import { describe, expect, it } from 'vitest';
import { ImageFlush } from '../../src/restore/files/writer.js';

/** A file handle whose flushes are counted, and settle when the test says. */
function fakeHandle(datasyncFails = false) {
  const calls = { datasync: 0, sync: 0 };
  let release = (): void => undefined;
  const handle = {
    datasync: () => {
      calls.datasync++;
      return new Promise<void>((resolve, reject) => {
        release = () => (datasyncFails ? reject(new Error('EIO: i/o error, fdatasync')) : resolve());
      });
    },
    sync: () => {
      calls.sync++;
      return Promise.resolve();
    },
  };
  return { handle, calls, release: () => release() };
}

describe('ImageFlush', () => {
  it('starts a background flush every so many bytes, one at a time, and fsyncs the rest when done', async () => {
    const { handle, calls, release } = fakeHandle();
    const flush = new ImageFlush(handle, '/r/vol.ebs.partial', 100);
    flush.wrote(60);
    expect(calls.datasync).toBe(0);
    flush.wrote(60);
    expect(calls.datasync).toBe(1);
    // One runs already: more bytes do not start a second.
    flush.wrote(500);
    expect(calls.datasync).toBe(1);
    release();
    await flush.settled();
    flush.wrote(100);
    expect(calls.datasync).toBe(2);
    release();
    await flush.done();
    expect(calls.sync).toBe(1);
  });

  it('reports a failed background flush when done, naming the image, and does not fsync past it', async () => {
    const { handle, calls, release } = fakeHandle(true);
    const flush = new ImageFlush(handle, '/r/vol.ebs.partial', 100);
    flush.wrote(100);
    release();
    await expect(flush.done()).rejects.toThrow(
      /\/r\/vol\.ebs\.partial: writing to disk failed \(EIO: i\/o error, fdatasync\); the image is incomplete/,
    );
    expect(calls.sync).toBe(0);
  });
});
