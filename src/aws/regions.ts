/**
 * The Regions the pinned AWS SDK knows, for a "did you mean" beside a failure in a Region it does
 * not. Derived from the SDK's own partition table (`partition()` answers a known Region with its
 * description): the candidates are the shape every Region name has, `<area>-<direction>-<n>`.
 * A Region newer than the SDK is not refused anywhere: it only gets no suggestion.
 */
import { partition } from '@aws-sdk/core/client';
import { suggestion } from '../config.js';

const AREAS = [
  'us',
  'eu',
  'ap',
  'sa',
  'ca',
  'me',
  'af',
  'il',
  'mx',
  'cn',
  'us-gov',
  'us-iso',
  'us-isob',
  'eusc-de',
];
const DIRECTIONS = [
  'east',
  'west',
  'north',
  'south',
  'central',
  'northeast',
  'northwest',
  'southeast',
  'southwest',
];

/** True when the SDK's partition table lists the Region (not just matches its pattern). */
export function regionKnown(region: string): boolean {
  try {
    return 'description' in partition(region);
  } catch {
    return false;
  }
}

let known: string[] | undefined;

/** The SDK's Regions, found once (about a thousand lookups in a table of some forty entries). */
export function knownRegions(): string[] {
  known ??= AREAS.flatMap((area) =>
    DIRECTIONS.flatMap((direction) =>
      Array.from({ length: 9 }, (_, i) => `${area}-${direction}-${i + 1}`).filter(regionKnown),
    ),
  );
  return known;
}

/** `; us-est-1 is not a Region the AWS SDK knows. Did you mean "us-east-1"?`, or '' for a known Region. */
export function regionAdvice(region: string): string {
  if (regionKnown(region)) return '';
  return `; ${region} is not a Region the AWS SDK knows.${suggestion(region, knownRegions())}`;
}
