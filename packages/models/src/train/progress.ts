/**
 * Progress reporting for training: on a terminal, one line redrawn in place (a bar with the step,
 * loss and speed); elsewhere (a file, a pipe, CI), plain log lines at each logging step.
 */

/** What the trainer tells its reporter. */
export interface ProgressReporter {
  /** After every optimizer update. */
  update(info: { step: number; total: number; epoch: number; loss: number; tokensPerSecond: number }): void;
  /** A message on its own line (logging steps, evaluations, checkpoints). */
  log(line: string): void;
  /** Training is over (clears the bar). */
  done(): void;
}

export interface ProgressOptions {
  write: (text: string) => void;
  /** A terminal: draw a bar. */
  tty: boolean;
  /** Columns of the terminal (default 80). */
  columns?: number;
}

/** A reporter writing through `write`: a redrawn bar on a TTY, plain lines otherwise. */
export function progressReporter(options: ProgressOptions): ProgressReporter {
  const { write, tty } = options;
  const columns = Math.max(40, options.columns ?? 80);
  let drawn = false;
  let lastDraw = 0;
  const clear = () => {
    if (drawn) write('\r\x1b[2K');
    drawn = false;
  };
  return {
    update({ step, total, epoch, loss, tokensPerSecond }) {
      if (!tty) return;
      const now = Date.now();
      if (step < total && now - lastDraw < 100) return;
      lastDraw = now;
      const text = ` ${step}/${total} ep ${epoch} loss ${loss.toFixed(4)} ${Math.round(tokensPerSecond)} tok/s`;
      const width = Math.max(10, columns - text.length - 3);
      const fill = Math.round((width * step) / Math.max(1, total));
      clear();
      write(`[${'#'.repeat(fill)}${'.'.repeat(width - fill)}]${text}`);
      drawn = true;
    },
    log(line) {
      clear();
      write(`${line}\n`);
    },
    done() {
      clear();
    },
  };
}

/** A reporter that prints nothing. */
export const silentProgress: ProgressReporter = { update() {}, log() {}, done() {} };
