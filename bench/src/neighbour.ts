/**
 * What an idle process costs a neighbour. A CPU-bound neighbour (bench/neighbour.mjs: one busy
 * thread per core) counts units of work during a phase, while an "idler" does one small matrix
 * product and then sits idle for a gap, over and over: a server answering a request now and then.
 * Thread pools that spin after each product (OpenBLAS's, OpenMP's) take CPU from the neighbour
 * during the gaps. Phases rotate between no idler (the neighbour alone) and each idler (kexue in
 * this process, the PyTorch children); the neighbour's milliseconds per unit against the alone
 * phase are the slowdown, and /proc says how many cores the idler used.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import * as kx from '@kexue/core-cuda';

import { checkedBlock, summarizeLoad, type BlockPolicy, type CheckedBlock } from './blocks.js';
import type { MeasureContext, MeasuredFields } from './cases.js';
import { machineTicks, processTicks } from './proc.js';
import { rand } from './random.js';
import { torchFields, type NeighbourResult } from './result.js';
import { median } from './stats.js';

export const NEIGHBOUR_SCRIPT = fileURLToPath(new URL('../neighbour.mjs', import.meta.url));

/** The idlers' pattern: one [n, n]·[n, n] product, then `gapMs` idle; phases of `phaseMs`. */
export const IDLE_PATTERN = { n: 512, gapMs: 250, phaseMs: 1500 } as const;

type IdlerKey = keyof NeighbourResult['idlers'];

/** A process that does a product when asked and is idle otherwise. */
export interface Idler {
  pid: number;
  product(): Promise<void>;
}

/** One phase: the neighbour's time per unit, the idler's CPU and the share of the phase in products. */
export interface NeighbourPhase {
  msPerUnit: number;
  idlerCores: number;
  productShare: number;
}

/** A running neighbour.mjs. */
export class Neighbour {
  readonly #proc: ChildProcessWithoutNullStreams;
  readonly #lines: AsyncIterator<string>;

  private constructor(proc: ChildProcessWithoutNullStreams) {
    this.#proc = proc;
    this.#lines = createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
  }

  /** Starts the neighbour with one worker per core and warms it up. */
  static async open(workers: number): Promise<Neighbour> {
    const n = new Neighbour(spawn(process.execPath, [NEIGHBOUR_SCRIPT, String(workers)], { stdio: ['pipe', 'pipe', 'pipe'] }));
    await n.work(300);
    return n;
  }

  get pid(): number {
    return this.#proc.pid ?? -1;
  }

  /** Works for `ms`; the time per unit of one worker, ms. */
  async work(ms: number): Promise<number> {
    this.#proc.stdin.write(`${JSON.stringify({ ms })}\n`);
    const next = await this.#lines.next();
    if (next.done) throw new Error('the neighbour process exited');
    const r = JSON.parse(next.value) as { units: number; ms: number; workers: number };
    return (r.ms * r.workers) / Math.max(1, r.units);
  }

  close(): void {
    this.#proc.stdin.end();
  }
}

/**
 * One phase: the neighbour works for phaseMs while the idler (if any) alternates a product and a
 * gap. Checked for load from outside: the neighbour and the idler are the block's own processes.
 */
export async function neighbourPhase(neighbour: Neighbour, idler: Idler | null, siblings: readonly number[], policy: BlockPolicy, cpus: number): Promise<CheckedBlock<NeighbourPhase>> {
  const timed = idler ? [neighbour.pid, idler.pid] : [neighbour.pid];
  return checkedBlock(
    async () => {
      const t0 = machineTicks();
      const idlerTicks0 = idler ? processTicks(idler.pid) : 0;
      const start = process.hrtime.bigint();
      let productNs = 0n;
      let done = false;
      const work = neighbour.work(IDLE_PATTERN.phaseMs).finally(() => (done = true));
      while (idler && !done) {
        const p0 = process.hrtime.bigint();
        await idler.product();
        productNs += process.hrtime.bigint() - p0;
        await sleep(IDLE_PATTERN.gapMs);
      }
      const msPerUnit = await work;
      const wallNs = process.hrtime.bigint() - start;
      const t1 = machineTicks();
      const total = t1.total - t0.total;
      const idlerTicks = idler ? processTicks(idler.pid) - idlerTicks0 : 0;
      return { msPerUnit, idlerCores: total > 0 ? (idlerTicks / total) * cpus : 0, productShare: Number(productNs) / Number(wallNs) };
    },
    timed,
    siblings.filter((p) => !timed.includes(p)),
    policy,
  );
}

/** The idle-neighbour case: phases rotate between the neighbour alone and beside each idler. */
export async function measureIdleNeighbour(ctx: MeasureContext): Promise<MeasuredFields> {
  const { n } = IDLE_PATTERN;
  const a = rand([n, n], 31);
  const b = rand([n, n], 32);
  const neighbour = await Neighbour.open(ctx.cpus);
  try {
    const idlers: [IdlerKey, Idler][] = [['kexue', { pid: process.pid, product: async () => kx.tidy(() => void kx.matmul(a, b)) }]];
    for (const t of ctx.torch) {
      await t.setup('idle-neighbour', { n });
      idlers.push([`torch_${t.setting.name}`, { pid: t.pid, product: async () => void (await t.run(1)) }]);
    }
    const siblings = [process.pid, ...ctx.torch.map((t) => t.pid)];
    const phases: [IdlerKey | 'alone', Idler | null][] = [['alone', null], ...idlers];
    const kept = new Map<string, CheckedBlock<NeighbourPhase>[]>(phases.map(([k]) => [k, []]));
    const rounds = Math.min(ctx.rounds, 3);
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < phases.length; i++) {
        const [key, idler] = phases[(i + round) % phases.length]!;
        kept.get(key)!.push(await neighbourPhase(neighbour, idler, siblings, ctx.policy, ctx.cpus));
      }
    }
    const med = (key: string, f: (p: NeighbourPhase) => number) => median(kept.get(key)!.map((blk) => f(blk.value)));
    const alone = med('alone', (p) => p.msPerUnit);
    const result: NeighbourResult = {
      pattern: `[${n}, ${n}]·[${n}, ${n}] every ${IDLE_PATTERN.gapMs} ms, phases of ${IDLE_PATTERN.phaseMs} ms`,
      workers: ctx.cpus,
      alone_ms: alone,
      idlers: Object.fromEntries(
        idlers.map(([key]) => {
          const ms = med(key, (p) => p.msPerUnit);
          return [key, { ms, slowdown: ms / alone - 1, idler_cores: med(key, (p) => p.idlerCores), product_share: med(key, (p) => p.productShare) }];
        }),
      ),
    };
    const torch = torchFields(new Map(ctx.torch.map((t) => [t.setting.name, result.idlers[`torch_${t.setting.name}`]!.ms])));
    const kexueMs = result.idlers.kexue!.ms;
    const blocks = [...kept.values()].flat();
    return {
      kexue_ms: kexueMs,
      ...torch,
      ratio: torch.torch_ms === null ? null : kexueMs / torch.torch_ms,
      kexue_samples: kept.get('kexue')!.map((blk) => blk.value.msPerUnit),
      neighbour: result,
      load: summarizeLoad(blocks),
      loaded: blocks.some((blk) => blk.loaded),
    };
  } finally {
    neighbour.close();
    kx.dispose([a, b]);
  }
}
