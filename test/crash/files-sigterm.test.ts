import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers.js';
import { points, prepare, walk, type Way } from '../crash-walk.js';

/**
 * Crash safety of a restore to files: a stop before each durable step, in each way a process
 * stops (SIGKILL as a power cut, SIGTERM as Bacula's cancel, ENOSPC as a full disk), leaves the
 * old point or the new one for all volumes together, and a rerun finishes the new one.
 */
const way: Way = 'SIGTERM';

describe(`a restore to files stopped by ${way} at every durable step`, () => {
  it('a 3-volume Full over a Full: old or new point, never mixed; the rerun ends at the new one', async () => {
    const work = tempDir();
    try {
      const { full, nextFull } = await points(work.path);
      const prepared = await prepare(work.path, full);
      const walked = await walk(work.path, prepared, full, nextFull, way);
      // 3 images created and fsynced, 8 metadata files, the journal, 11 renames, the state, the journal's removal.
      expect(walked.steps).toBeGreaterThanOrEqual(30);
      expect(walked.rolledBack).toBeGreaterThan(0);
      expect(walked.rolledForward).toBeGreaterThan(0);
    } finally {
      work.cleanup();
    }
  });

  it('a 3-volume Incremental: old or new point, never mixed; the rerun exits 0 at the new one', async () => {
    const work = tempDir();
    try {
      const { full, incremental } = await points(work.path);
      const prepared = await prepare(work.path, full);
      const walked = await walk(work.path, prepared, full, incremental, way);
      expect(walked.steps).toBeGreaterThanOrEqual(30);
      expect(walked.rolledBack).toBeGreaterThan(0);
      expect(walked.rolledForward).toBeGreaterThan(0);
    } finally {
      work.cleanup();
    }
  });
});
