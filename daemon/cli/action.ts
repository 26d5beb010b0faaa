/**
 * The one way a command's action fails: whatever it throws goes to the
 * command's `fail` (one line on stderr, then its exit code), never to an
 * unhandled rejection with a stack trace.
 */
import type { Command } from 'commander';

/** A commander action, as `Command.action` takes it. */
export type Action = Parameters<Command['action']>[0];

/** Wraps actions so that what they throw goes to `fail`. */
export function failingTo(fail: (err: unknown) => never): (action: Action) => Action {
  return (action) =>
    async function (this: Command, ...args) {
      try {
        await action.apply(this, args);
      } catch (err) {
        fail(err);
      }
    };
}

/** A usage mistake found after parsing: the command exits 2, as for a mistake commander finds. */
export class UsageError extends Error {
  readonly exitCode = 2;
}
