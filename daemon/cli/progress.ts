/**
 * A one-line progress display on stderr while `analyze --model` checks and
 * loads the model and diagnoses: only on a TTY (a log file or a pipe gets
 * nothing), redrawn in place, cleared when done.
 */
import type { OfflineProgress } from '../diagnoser/offline.js';

/** A progress line: `update` with each step, `done` to clear it. */
export interface ProgressLine {
  update: (p: OfflineProgress) => void;
  done: () => void;
}

/** A progress line on `out` (nothing unless it is a TTY). */
export function progressLine(out: NodeJS.WriteStream): ProgressLine {
  if (!out.isTTY) return { update: () => undefined, done: () => undefined };
  const started = Date.now();
  let text = '';
  let shown = false;
  const frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
  let frame = 0;
  const draw = () => {
    const secs = ((Date.now() - started) / 1000).toFixed(0);
    out.write(`\r\x1b[2K${frames[frame++ % frames.length]} ${text} (${secs} s)`);
    shown = true;
  };
  // Loading a model blocks no event loop turn for long, so a timer keeps the clock moving.
  const timer = setInterval(draw, 250);
  timer.unref();
  return {
    update(p) {
      text =
        p.stage === 'checking'
          ? `checking model ${p.model}`
          : p.stage === 'loading'
            ? `loading model ${p.model} (${(p.sizeBytes / 1024 / 1024).toFixed(0)} MiB)`
            : `diagnosing finding ${p.done + 1} of ${p.total}`;
      draw();
    },
    done() {
      clearInterval(timer);
      if (shown) out.write('\r\x1b[2K');
    },
  };
}
