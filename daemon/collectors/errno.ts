/** Small helpers for Node system errors, shared by the collectors. */

/** The errno code of a system error (`ENOENT`, `EPERM`…), or undefined. */
export function errCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** The message of an error, or the value as text. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
