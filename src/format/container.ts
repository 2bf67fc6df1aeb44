/**
 * docs/FORMAT.md, "Container": the stream's constants, its members' names and modes. The JSON
 * members' types live in members.ts, the sparse map in sparse.ts.
 */
export const FORMAT_NAME = 'ec2-bpipe';
/** What this tool writes. */
export const FORMAT_VERSION = 2;
/** What this tool reads: version 1 streams stay restorable, without the version 2 proofs. */
export const READABLE_VERSIONS: readonly number[] = [1, 2];
export const BLOCK_SIZE = 512 * 1024;
export const GIB = 1024 ** 3;

export const member = {
  manifest: 'manifest.json',
  instance: 'instance.json',
  volumeMeta: (id: string) => `${id}.json`,
  volumeData: (id: string) => `${id}.ebs`,
  volumeSum: (id: string) => `${id}.sum.json`,
  end: 'end.json',
};

/** Names the sparse member carries in its ustar header, as GNU tar does; GNU.sparse.name holds the real one. */
export const sparseHeaderName = (name: string): string => `GNUSparseFile.0/${name}`;

/** The mode of every member: images and metadata hold a machine's disk, readable by the owner only. */
export const MEMBER_MODE = 0o600;

/** The constant name of the finalizer in the Bacula catalog: printed last, restored once, after all the data. */
export const FINALIZER_NAME = 'restore.json';
