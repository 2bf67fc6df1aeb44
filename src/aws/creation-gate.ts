/**
 * The gate on requests that create AWS resources. When a restore test is interrupted, its
 * clean-up closes the gate, waits for the creating requests already sent, and only then lists
 * what to remove: a launch cannot add an instance after the clean-up looked.
 */
import type { EBSClient } from '@aws-sdk/client-ebs';
import type { EC2Client } from '@aws-sdk/client-ec2';
import { RuntimeFailure } from '../errors.js';

/** The commands that make something a clean-up would have to find. */
const CREATING = new Set([
  'RunInstancesCommand',
  'RegisterImageCommand',
  'CreateVolumeCommand',
  'StartSnapshotCommand',
  'CreateSnapshotsCommand',
  'CopySnapshotCommand',
]);

let closed = false;
let inFlight = 0;
let settled: (() => void)[] = [];

/**
 * Closes the gate: every later creating request fails before it is sent. Resolves once the
 * creating requests already sent have their answers.
 */
export function closeCreations(): Promise<void> {
  closed = true;
  return inFlight === 0 ? Promise.resolve() : new Promise((resolve) => settled.push(resolve));
}

/** Puts the gate on a client's creating requests (at initialize: once per command, not per retry). */
export function gateCreations(clients: { ec2: EC2Client; ebs: EBSClient }): void {
  const gate =
    <I extends object, O extends object>() =>
    (next: (args: I) => Promise<O>, context: { commandName?: string }) =>
    async (args: I): Promise<O> => {
      if (!CREATING.has(context.commandName ?? '')) return next(args);
      if (closed)
        throw new RuntimeFailure(
          `${(context.commandName ?? '').replace(/Command$/, '')} was not sent: the run is being interrupted`,
        );
      inFlight++;
      try {
        return await next(args);
      } finally {
        inFlight--;
        if (inFlight === 0) {
          for (const resolve of settled) resolve();
          settled = [];
        }
      }
    };
  const options = { step: 'initialize', name: 'ec2BpipeCreationGate' } as const;
  clients.ec2.middlewareStack.add(gate(), options);
  clients.ebs.middlewareStack.add(gate(), options);
}
