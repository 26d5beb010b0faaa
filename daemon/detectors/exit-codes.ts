/**
 * What a container's exit code means: the one table that findings (CrashLoop,
 * ContainerFailed) and the rule hints both word their exit codes from.
 */

/** Linux signal names by number (x86/arm), for exit codes 128 + n. */
const SIGNALS: Record<number, string> = {
  1: 'SIGHUP',
  2: 'SIGINT',
  3: 'SIGQUIT',
  4: 'SIGILL',
  5: 'SIGTRAP',
  6: 'SIGABRT',
  7: 'SIGBUS',
  8: 'SIGFPE',
  9: 'SIGKILL',
  10: 'SIGUSR1',
  11: 'SIGSEGV',
  12: 'SIGUSR2',
  13: 'SIGPIPE',
  14: 'SIGALRM',
  15: 'SIGTERM',
};

/** The signal an exit code stands for (`137` → `SIGKILL`), or null for a plain exit status. */
export function exitSignal(code: number, signal?: number): string | null {
  const n = signal !== undefined && signal > 0 ? signal : code > 128 && code < 160 ? code - 128 : 0;
  if (n === 0) return null;
  return SIGNALS[n] ?? `signal ${n}`;
}

interface ExitCodeEntry {
  /** What the code means, worded to follow "exit code N:" and "Exit code N means". */
  meaning: string;
  /**
   * What a finding says instead: its detector has already reported the causes
   * it could tell apart (an OOM kill, a liveness-probe kill). Defaults to meaning.
   */
  inFinding?: string;
  /** A convention of applications only: the rule hint says it, a finding does not. Defaults to false. */
  convention?: boolean;
}

const EXIT_CODES: Record<number, ExitCodeEntry> = {
  0: { meaning: 'the process ended successfully, but the pod restarts it (restartPolicy Always): a one-shot command in a long-running workload' },
  1: { meaning: 'the application stopped on an error of its own (configuration, a dependency it cannot reach, an unhandled exception)', convention: true },
  2: { meaning: 'the command was given invalid arguments or the shell script failed', convention: true },
  126: { meaning: 'the entrypoint exists but is not executable (permissions or wrong architecture)' },
  127: { meaning: 'the entrypoint or a command it runs was not found in the image' },
  134: { meaning: 'the process aborted itself, often a failed assertion or a runtime crash' },
  137: {
    meaning: 'the process was killed, by the OOM killer, by a failed liveness probe, or after ignoring SIGTERM',
    inFinding: 'something killed the process (not recorded as an OOM kill)',
  },
  139: { meaning: 'the process crashed on a memory access fault' },
  143: { meaning: 'the process was asked to stop and did' },
};

/** The table's entry, or the general meaning of a signal exit (129-159); undefined for any other code. */
function entryOf(code: number): ExitCodeEntry | undefined {
  return EXIT_CODES[code] ?? (code > 128 && code < 160 ? { meaning: `the process was killed by signal ${code - 128}` } : undefined);
}

/**
 * What an exit code means, as a finding's message says it after "Exit code N"
 * (`is SIGSEGV: the process crashed…`, `means the entrypoint…`); null when the
 * code says nothing general.
 */
export function exitCodeMeaning(code: number): string | null {
  const e = entryOf(code);
  if (!e || e.convention) return null;
  const named = EXIT_CODES[code] ? exitSignal(code) : null;
  const text = e.inFinding ?? e.meaning;
  return named ? `is ${named}: ${text}` : `means ${text}`;
}

/** What an exit code means, as a rule hint says it: `exit code 139 (SIGSEGV): the process crashed…`; every code has one. */
export function describeExitCode(code: number): string {
  const e = entryOf(code);
  if (!e) return `exit code ${code}: the application reported a failure`;
  const named = EXIT_CODES[code] ? exitSignal(code) : null;
  return `exit code ${code}${named ? ` (${named})` : ''}: ${e.meaning}`;
}
