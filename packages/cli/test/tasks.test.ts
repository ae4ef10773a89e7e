/**
 * `kexue train|eval|predict <task>` come from the task registry: the help lists every key of a
 * task with its type, default and range, the learning rate's default follows the chosen optimizer
 * (its own default from the optimizer class), and a task defined outside the CLI — here a toy
 * regression in this file — trains, resumes and evaluates through the CLI with no CLI code of its
 * own. The progress renderer draws a bar with elapsed time and ETA on a terminal, lines elsewhere.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import * as kx from '@kexue/core-cuda';
import { Dataset, Module, RUN_KEYS, defineTask, nerTask, number, optimKeys, trainKeys, type TrainEvent } from '@kexue/models';
import { Lion, Tiger } from '@kexue/optimizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { progressRenderer, runCli, taskGroup, version, type CommandContext } from '@kexue/cli';

import { run } from './run_cli.js';

/** y = w·x with one weight, fitted to y = slope·x. */
class Line extends Module {
  constructor() {
    super();
    this.addParameter('w', kx.zeros([1]));
  }

  get w(): kx.Tensor {
    return this.p('w');
  }
}

const TOY_KEYS = { data: { slope: number(2, 'the slope to learn') }, optim: optimKeys('constant', {}), train: trainKeys({ batch: 4, epochs: 1, log: 1 }), ...RUN_KEYS };

const toy = defineTask({
  name: 'toy',
  summary: 'a line through the origin',
  config: TOY_KEYS,
  recipe: {},
  best: { metric: 'error', higherIsBetter: false },
  async setup(config) {
    const model = new Line();
    const xs = Array.from({ length: 16 }, (_, i) => i / 8 - 1);
    const error = () => Math.abs(model.w.item() - config.data.slope);
    return {
      model,
      data: new Dataset(xs),
      inputs: ({ records }: { records: number[] }) => ({ x: kx.tensor(Float32Array.from(records), [records.length]) }),
      lossOf: ({ x }: { x: kx.Tensor }) => kx.mean(kx.pow(kx.sub(kx.mul(x, model.w), kx.mul(x, config.data.slope)), 2)),
      tokens: (records: number[]) => records.length,
      evaluate: async () => ({ error: error() }),
      arch: { kind: 'line' },
      files: {},
      about: { model: 'line', data: { train: xs.length, dev: 0, unit: 'points' } },
    };
  },
  describeEval: (m) => `dev error ${m.error!.toFixed(4)}`,
  commands: {
    eval: {
      summary: 'the learned slope of a run',
      options: [],
      async run(runDir, _args, io) {
        const weights = kx.io.loadSafetensors(path.join(runDir, 'checkpoints', readdirOne(runDir), 'model.safetensors'));
        io.write(`${JSON.stringify({ slope: weights.w!.item(), target: toy.readConfig(runDir).data.slope })}\n`);
        kx.dispose(weights);
      },
    },
  },
});

/** The one checkpoint directory a finished toy run keeps (last = best). */
function readdirOne(runDir: string): string {
  const index = JSON.parse(readFileSync(path.join(runDir, 'checkpoints.json'), 'utf8')) as { last: { dir: string } };
  return path.basename(index.last.dir);
}

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'kexue-cli-tasks-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function runToy(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const ctx: CommandContext = { stdout: (s) => void (out += s), stderr: (s) => void (err += s), readStdin: async () => '', env: { KEXUE_PROGRESS: 'lines' }, cwd: tmp };
  const commands = [taskGroup('train', () => [toy]), taskGroup('eval', () => [toy]), taskGroup('predict', () => [toy])];
  const code = await runCli({ commands, version }, argv, ctx);
  return { code, out, err };
}

describe('commands from the task registry', () => {
  it('kexue train ner --help lists every key with its type, default and range', async () => {
    const r = await run(['train', 'ner', '--help']);
    expect(r.code).toBe(0);
    for (const [name, key] of nerTask.keys) {
      const line = r.out.split('\n').find((l) => l.trimStart().startsWith(`${name} `));
      expect(line, name).toBeDefined();
      if (key.choices) expect(line).toContain(key.choices.join('|'));
      if (key.min !== undefined) expect(line).toContain(`${key.min}`);
      if (!key.showDefault) expect(line).toContain(`default ${JSON.stringify(key.default)}`);
    }
    expect(r.out).toMatch(/model\.hidden +integer ≥ 2 +default 128\n +hidden size/);
    expect(r.out).toMatch(/train\.stop_at .*\(a resume may change it\)/);
  });

  it("shows the chosen optimizer's real default learning rate", async () => {
    const tiger = await run(['train', 'ner', 'optim.name=tiger', '--help']);
    expect(tiger.out).toContain(`its own default is ${Tiger.defaults.learningRate})`);
    const lion = await run(['train', 'ner', 'optim.name=lion', '--help']);
    expect(lion.out).toMatch(new RegExp(`optim\\.lr .*default 0 = ${Lion.defaults.learningRate} \\(lion's default\\)`));
  });

  it('lists the tasks of a verb, and names an unknown one', async () => {
    const list = await run(['train', '--help']);
    expect(list.out).toMatch(/Tasks:\n +ner +Named entities .*GlobalPointer.*\n +mlm +Masked-LM.*\n +summarize +Summarization.*\n +pegasus +PEGASUS/);
    expect((await run(['predict', '--help'])).out).not.toContain('mlm');
    const bad = await run(['train', 'nre']);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("unknown task 'nre' (did you mean 'ner'?) (tasks: ner, mlm, summarize, pegasus, vae)");
  });

  it('train.compile=true trains with compiled updates (the train records count traces), and is refused with loss scaling', async () => {
    const r = await runToy(['train', 'toy', 'optim.name=adamw', 'optim.lr=0.2', 'train.compile=true', '--run-dir', 'toy-compiled']);
    expect(r.code).toBe(0);
    const train = readFileSync(path.join(tmp, 'toy-compiled', 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { kind: string; compile_traces?: number; compile_replays?: number })
      .filter((rec) => rec.kind === 'train');
    // 4 updates of one batch shape: the micro-step and the update traced once, replayed 3 times each
    expect(train.at(-1)).toMatchObject({ compile_traces: 2, compile_replays: 6 });
    expect(r.err).toMatch(/step 4\/4 .* grad norm [\d.]+  2 traces  /);
    const refused = await runToy(['train', 'toy', 'train.compile=true', '--precision', 'fp16', '--run-dir', 'toy-fp16']);
    expect(refused.code).toBe(2);
    expect(refused.err).toContain('train.compile=true cannot run with loss scaling (precision=fp16');
    expect(existsSync(path.join(tmp, 'toy-fp16'))).toBe(false);
    // --nproc is refused before mpirun starts (every rank would refuse it)
    const dataParallel = await runToy(['train', 'toy', 'train.compile=true', '--nproc', '2', '--run-dir', 'toy-dp']);
    expect(dataParallel.code).toBe(2);
    expect(dataParallel.err).toContain('train.compile=true cannot run data-parallel (--nproc, mpirun)');
    expect(existsSync(path.join(tmp, 'toy-dp'))).toBe(false);
  });

  it('a task defined outside the CLI trains, resumes and evaluates through it', async () => {
    const dir = path.join(tmp, 'toy');
    const first = await runToy(['train', 'toy', 'optim.name=adamw', 'optim.lr=0.2', 'train.stop_at=2', '--run-dir', 'toy']);
    expect(first.err).toContain('toy: 16 train / 0 dev points, line, 1 parameters, 4 updates, run');
    expect(first.code).toBe(0);
    expect(first.err).toMatch(/stopped at step 2 \(train.stop_at\) with a checkpoint, trained for \d+:\d\d; continue with: kexue train toy --resume/);
    const second = await runToy(['train', 'toy', '--resume', 'toy', 'optim.lr=1']);
    expect(second.code).toBe(2);
    expect(second.err).toContain('config key optim.lr cannot change when resuming');
    const resumed = await runToy(['train', 'toy', '--resume', 'toy']);
    expect(resumed.err).toContain('resuming at step 2');
    expect(resumed.err).toMatch(/dev error \d\.\d{4}; best error .* at step 4; trained for \d+:\d\d; run /);
    expect(resumed.code).toBe(0);
    const summary = JSON.parse(resumed.out) as { step: number; dev: { error: number } };
    expect(summary.step).toBe(4);
    expect(summary.dev.error).toBeLessThan(2); // it moved from 0 toward 2
    for (const f of ['config.json', 'metrics.jsonl', 'checkpoints.json']) expect(existsSync(path.join(dir, f))).toBe(true);
    const evaluated = await runToy(['eval', 'toy', 'toy']);
    expect(evaluated.code).toBe(0);
    const e = JSON.parse(evaluated.out) as { slope: number; target: number };
    expect(e.target).toBe(2);
    expect(Math.abs(e.slope - e.target)).toBeCloseTo(summary.dev.error, 6);
    const noPredict = await runToy(['predict', 'toy', 'toy']);
    expect(noPredict.code).toBe(2);
    expect(noPredict.err).toContain("unknown task 'toy'");
  });
});

describe('progress rendering', () => {
  const events: TrainEvent[] = [
    { type: 'start', task: 'ner', runDir: '/r', device: 'cpu', precision: 'bf16', model: 'roformer 2x32 + egp', parameters: 10, updates: 4, data: { train: 8, dev: 2, unit: 'records' }, extra: '3 types' },
    { type: 'step', step: 1, total: 4, epoch: 0, loss: 1.5, tokensPerSecond: 1000, elapsedMs: 61_000, etaMs: 3_723_000 },
    { type: 'log', total: 4, record: { kind: 'train', step: 1, epoch: 0, loss: 1.5, lr: 2e-3, grad_norm: 0.5, tokens_per_s: 1000 } },
    { type: 'eval', step: 1, metrics: { f1: 0.25 }, seconds: 1, best: true },
    { type: 'done', step: 4 },
  ];

  it('draws a bar with elapsed time and ETA on a terminal, clearing it for each line', () => {
    let text = '';
    const render = progressRenderer({ write: (s) => void (text += s), terminal: { columns: 100 }, now: () => 0 });
    for (const e of events) render(e);
    expect(text).toContain('ner: 8 train / 2 dev records, 3 types, roformer 2x32 + egp, 10 parameters, 4 updates, run /r\n');
    expect(text).toContain('mixed precision: bf16 compute');
    expect(text).toMatch(/\[#+\.+\] 1\/4 ep 0 loss 1\.5000 1000 tok\/s 1:01 ETA 1:02:03/);
    expect(text).toContain('\r\x1b[2Kstep 1/4  epoch 0  loss 1.5000  lr 2.00e-3  grad norm 0.500  1000 tok/s  1:01 elapsed, ETA 1:02:03\n');
    expect(text).toContain('eval step 1: f1 0.2500  (best so far)\n');
    expect(text.endsWith('\n')).toBe(true);
  });

  it('writes plain lines without a terminal', () => {
    let text = '';
    const render = progressRenderer({ write: (s) => void (text += s) });
    for (const e of events) render(e);
    expect(text).not.toContain('\r');
    expect(text).not.toContain('[#');
    expect(text.split('\n').filter(Boolean)).toHaveLength(4);
  });
});
