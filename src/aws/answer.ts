import { RuntimeFailure } from '../errors.js';

/**
 * A field AWS documents as always present in an answer. The SDK types every field as optional;
 * this says which one was missing instead of failing later on an undefined.
 */
export function answered<T>(value: T | null | undefined, what: string): T {
  if (value === undefined || value === null) {
    throw new RuntimeFailure(`AWS answered without ${what}; retry, and report it if it persists`);
  }
  return value;
}
