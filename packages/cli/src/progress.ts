/**
 * The CLI's view of a training run: renders the run's events (@kexue/models' TrainEvent). On a
 * terminal, one line redrawn in place (a bar with the step, loss, speed, elapsed time and ETA)
 * under the log lines; elsewhere (a file, a pipe, CI) plain log lines only.
 */
import type { TrainEvent, TrainObserver } from '@kexue/models';

export interface RendererOptions {
  write: (text: string) => void;
  /** A terminal of this many columns: draw a bar; absent: plain lines. */
  terminal?: { columns: number };
  /** The clock in ms (tests); default Date.now. */
  now?: () => number;
}

/** 83 s → '1:23', 3725 s → '1:02:05'. */
export function clock(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60));
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${mm.padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

const metricsLine = (m: Record<string, number>) => Object.entries(m).map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(4)}`).join('  ');

/** An observer that writes a run's events as lines, and draws the bar on a terminal. */
export function progressRenderer(o: RendererOptions): TrainObserver {
  const { write, terminal } = o;
  const now = o.now ?? Date.now;
  let drawn = false;
  let lastDraw = -Infinity;
  let timing = { elapsedMs: 0, etaMs: 0 };
  const clear = () => {
    if (drawn) write('\r\x1b[2K');
    drawn = false;
  };
  const line = (text: string) => {
    clear();
    write(`${text}\n`);
  };
  return (e: TrainEvent) => {
    switch (e.type) {
      case 'start':
        line(
          `${e.task}: ${e.data.train} train / ${e.data.dev} dev ${e.data.unit}${e.extra ? `, ${e.extra}` : ''}, ${e.model}, ` +
            `${e.parameters} parameters, ${e.updates} updates, run ${e.runDir}`,
        );
        if (e.precision) line(`mixed precision: ${e.precision} compute, float32 master weights and optimizer state`);
        if (e.device !== 'cpu') line(`device: ${e.device}`);
        return;
      case 'notice':
        line(e.message);
        return;
      case 'resume':
        line(`resuming at step ${e.step} (epoch ${e.epoch}, record ${e.index})${e.droppedRecords ? `; dropped ${e.droppedRecords} metrics records written after that checkpoint` : ''}`);
        return;
      case 'step': {
        timing = { elapsedMs: e.elapsedMs, etaMs: e.etaMs };
        if (!terminal) return;
        const t = now();
        if (e.step < e.total && t - lastDraw < 100) return;
        lastDraw = t;
        const text = ` ${e.step}/${e.total} ep ${e.epoch} loss ${e.loss.toFixed(4)} ${Math.round(e.tokensPerSecond)} tok/s ${clock(e.elapsedMs)} ETA ${clock(e.etaMs)}`;
        const width = Math.max(10, Math.max(40, terminal.columns) - text.length - 3);
        const fill = Math.round((width * e.step) / Math.max(1, e.total));
        clear();
        write(`[${'#'.repeat(fill)}${'.'.repeat(width - fill)}]${text}`);
        drawn = true;
        return;
      }
      case 'log': {
        const r = e.record as Record<string, number>;
        const scaling = r.loss_scale !== undefined ? `  loss scale ${r.loss_scale}${r.skipped_steps ? ` (${r.skipped_steps} skipped)` : ''}` : '';
        // train.compile: programs traced so far (a count that grows means new batch shapes)
        const compiled = r.compile_traces !== undefined ? `  ${r.compile_traces} traces` : '';
        line(
          `step ${r.step}/${e.total}  epoch ${r.epoch}  loss ${r.loss!.toFixed(4)}  lr ${r.lr!.toExponential(2)}  grad norm ${r.grad_norm!.toFixed(3)}${scaling}${compiled}  ` +
            `${Math.round(r.tokens_per_s!)} tok/s  ${clock(timing.elapsedMs)} elapsed, ETA ${clock(timing.etaMs)}`,
        );
        return;
      }
      case 'eval':
        line(`eval step ${e.step}: ${metricsLine(e.metrics)}${e.best ? '  (best so far)' : ''}`);
        return;
      case 'done':
        clear();
        return;
    }
  };
}
