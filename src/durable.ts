import { open } from 'node:fs/promises';

/**
 * Writes a small file (JSON metadata, a state file) and flushes it to disk before the caller
 * renames it into place. Without the flush a crash after the rename can leave the final name
 * pointing at an empty or partial file: the rename reaches the disk before the data does on
 * file systems that do not order them (ext4 with delalloc orders only a rename over an existing
 * file, XFS none).
 */
export async function writeSynced(path: string, text: string): Promise<void> {
  const file = await open(path, 'w', 0o600);
  try {
    await file.writeFile(text);
    await file.sync();
  } finally {
    await file.close();
  }
}

/**
 * Flushes a directory's entries, so that the renames into it are on disk: a restore that reports
 * success has its files under their final names even if the machine stops right after.
 */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
