import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { BlockRef } from '../../src/aws/blocks.js';
import { BlockList, CHANGE_TOKEN_BYTES } from '../../src/backup/block-list.js';

/** Ascending block indices, each with a token or (an explicit zero region) none. */
const listing = fc
  .uniqueArray(fc.integer({ min: 0, max: 2 ** 31 }), { maxLength: 3000 })
  .chain((indices) =>
    fc.tuple(
      fc.constant([...indices].sort((a, b) => a - b)),
      fc.array(fc.option(fc.base64String({ minLength: 4, maxLength: 256 }), { nil: undefined }), {
        minLength: indices.length,
        maxLength: indices.length,
      }),
    ),
  )
  .map(([indices, tokens]): BlockRef[] =>
    indices.map((index, i) => {
      const token = tokens[i];
      return token === undefined || token === '' ? { index } : { index, token };
    }),
  );

describe('BlockList (one listing kept, 4 bytes a block)', () => {
  it('gives back the listing it was given: indices, and tokens when asked', () => {
    fc.assert(
      fc.property(listing, (refs) => {
        const withTokens = new BlockList(CHANGE_TOKEN_BYTES);
        const indicesOnly = new BlockList(0);
        for (const ref of refs) {
          withTokens.add(ref);
          indicesOnly.add(ref);
        }
        expect([...withTokens.refs()]).toEqual(refs);
        expect([...indicesOnly.blockIndices()]).toEqual(refs.map((r) => r.index));
        expect(indicesOnly.tokensKept).toBe(false);
        expect(() => [...indicesOnly.refs()]).toThrow('not kept');
      }),
      { numRuns: 200 },
    );
  });

  it('gives up past its bounds, so memory stays bounded and the caller lists again', () => {
    fc.assert(
      fc.property(
        listing,
        fc.integer({ min: 1, max: 500 }),
        fc.integer({ min: 1, max: 5000 }),
        (refs, maxBlocks, maxTokenBytes) => {
          const list = new BlockList(maxTokenBytes, maxBlocks);
          for (const ref of refs) list.add(ref);
          const tokenBytes = refs.reduce((n, r) => n + (r.token?.length ?? 0), 0);
          expect(list.indicesKept).toBe(refs.length <= maxBlocks);
          expect(list.tokensKept).toBe(refs.length <= maxBlocks && tokenBytes <= maxTokenBytes);
          if (list.indicesKept) expect([...list.blockIndices()]).toEqual(refs.map((r) => r.index));
          else expect(() => [...list.blockIndices()]).toThrow('not kept');
          if (list.tokensKept) expect([...list.refs()]).toEqual(refs);
        },
      ),
      { numRuns: 200 },
    );
  });
});
