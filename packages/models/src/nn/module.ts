/**
 * The Module system: a tree of modules with named parameters (dotted paths that follow Hugging
 * Face's state-dict names), train/eval modes, and state dicts that load by name with a report of
 * what was missing, unexpected or mis-shaped.
 *
 * Parameters are float tensors owned by their module (kept out of every tidy scope); loading or
 * `setParameter` replaces them. Optimizers receive `namedParameters()` (a name → Tensor record) and
 * may update those tensors in place.
 */
import { ArgumentError, FormatError, Tensor, cast, dispose, keep, slice, tidy } from '@kexue/core-cuda';

import type { Initializer } from './init.js';
import type { InitRng } from './random.js';

/** What loadStateDict did, name by name (names as in the state dict given). */
export interface LoadReport {
  /** Parameters whose values were loaded. */
  loaded: string[];
  /** Parameters the state dict did not have (they keep their current values). */
  missing: string[];
  /** State-dict entries no parameter takes. */
  unexpected: string[];
  /** Entries whose shape differs from the parameter's (not loaded). */
  mismatched: { name: string; expected: number[]; got: number[] }[];
  /** Entries that are known and deliberately not loaded: tied copies and non-parameter buffers. */
  ignored: string[];
}

export interface LoadOptions {
  /**
   * Throw E_FORMAT (naming every problem) when anything is missing, unexpected or mis-shaped.
   * Default true. With false, the report says what happened and the rest is loaded.
   */
  strict?: boolean;
  /** Prepended to every parameter name when looking it up (e.g. 'bert.' for a BertForMaskedLM file). */
  prefix?: string;
}

export abstract class Module {
  #params = new Map<string, Tensor>();
  #children = new Map<string, Module>();
  /** Names of state-dict entries that mirror a parameter held elsewhere (tied weights), with their shape. */
  #aliases = new Map<string, () => readonly number[]>();
  /** State-dict names (regular expressions on the local name) that are buffers, not parameters. */
  #ignored: RegExp[] = [];
  #training = true;
  /** What p() returns in place of each own parameter while withParameterView runs (else null). */
  #view: Map<string, Tensor> | null = null;

  /** Registers a parameter made by `init` (or given) under `name`; returns it. */
  protected addParameter(name: string, value: Tensor | { shape: readonly number[]; init: Initializer; rng: InitRng }): Tensor {
    checkName(name);
    if (this.#params.has(name) || this.#children.has(name)) throw new ArgumentError(`module already has a member '${name}'`);
    const t = value instanceof Tensor ? value : value.init(value.shape, value.rng);
    this.#params.set(name, keep(t));
    return t;
  }

  /** Registers a child module under `name`; returns it. */
  protected addModule<M extends Module>(name: string, module: M): M {
    checkName(name);
    if (this.#params.has(name) || this.#children.has(name)) throw new ArgumentError(`module already has a member '${name}'`);
    if (!(module instanceof Module)) throw new ArgumentError(`addModule: '${name}' is not a Module`);
    this.#children.set(name, module);
    module.train(this.#training);
    return module;
  }

  /** Declares a state-dict entry that is a tied copy of another parameter (e.g. an MLM decoder). */
  protected addAlias(name: string, shape: () => readonly number[]): void {
    this.#aliases.set(name, shape);
  }

  /** Declares state-dict entries (matching the local name) that are buffers this module recomputes. */
  protected ignoreOnLoad(pattern: RegExp): void {
    this.#ignored.push(pattern);
  }

  /** The current tensor of this module's own parameter `name`. */
  protected p(name: string): Tensor {
    const t = this.#view?.get(name) ?? this.#params.get(name);
    if (!t) throw new ArgumentError(`no parameter '${name}'`);
    return t;
  }

  /** Whether the module is in training mode (dropout active). */
  get training(): boolean {
    return this.#training;
  }

  /** Sets training mode on this module and every descendant; returns this. */
  train(mode = true): this {
    this.#training = mode;
    for (const c of this.#children.values()) c.train(mode);
    return this;
  }

  /** Evaluation mode (dropout off); returns this. */
  eval(): this {
    return this.train(false);
  }

  /** Direct children by name. */
  children(): [string, Module][] {
    return [...this.#children.entries()];
  }

  /** Every parameter under its dotted path, in registration order (tied copies appear once). */
  namedParameters(prefix = ''): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    for (const [n, t] of this.#params) out[prefix + n] = t;
    for (const [n, c] of this.#children) Object.assign(out, c.namedParameters(`${prefix}${n}.`));
    return out;
  }

  /** The parameters as a list, in namedParameters order. */
  parameters(): Tensor[] {
    return Object.values(this.namedParameters());
  }

  /** Number of parameter elements. */
  parameterCount(): number {
    return this.parameters().reduce((n, t) => n + t.size, 0);
  }

  /** The state dict: namedParameters (the live tensors, not copies; tied copies omitted, as safetensors files do). */
  stateDict(): Record<string, Tensor> {
    return this.namedParameters();
  }

  /**
   * Replaces the parameter at a dotted path with a copy of value, cast to the parameter's dtype and
   * put on its device (the shape must match); the old tensor is disposed, value stays the caller's.
   */
  setParameter(path: string, value: Tensor): void {
    const { owner, local } = this.#resolve(path);
    const old = owner.#params.get(local)!;
    if (!sameShape(old.shape, value.shape)) {
      throw new ArgumentError(`setParameter: '${path}' is [${old.shape.join(', ')}], got [${value.shape.join(', ')}]`);
    }
    owner.#params.set(local, keep(copyAs(value, old)));
    if (old !== value) old.dispose();
  }

  /**
   * Loads parameters by name from a state dict (e.g. a safetensors file of a Hugging Face model).
   * Values are copied, cast to each parameter's dtype and put on its device (weights read on the CPU
   * load into a model already moved to a GPU); the given tensors stay the caller's.
   * See LoadReport and LoadOptions.
   */
  loadStateDict(stateDict: Record<string, Tensor>, options: LoadOptions = {}): LoadReport {
    const { strict = true, prefix = '' } = options;
    if (stateDict === null || typeof stateDict !== 'object') throw new ArgumentError('loadStateDict: expected a record of tensors');
    const report: LoadReport = { loaded: [], missing: [], unexpected: [], mismatched: [], ignored: [] };
    const params = this.namedParameters();
    const aliases = this.#allAliases();
    const ignored = this.#allIgnored();
    const updates: [string, Tensor][] = [];
    for (const [local, t] of Object.entries(params)) {
      const name = prefix + local;
      const v = stateDict[name];
      if (v === undefined) {
        report.missing.push(name);
      } else if (!(v instanceof Tensor)) {
        throw new ArgumentError(`loadStateDict: '${name}' is not a Tensor`);
      } else if (!sameShape(v.shape, t.shape)) {
        report.mismatched.push({ name, expected: [...t.shape], got: [...v.shape] });
      } else {
        updates.push([local, v]);
        report.loaded.push(name);
      }
    }
    for (const [name, v] of Object.entries(stateDict)) {
      if (!name.startsWith(prefix)) {
        report.unexpected.push(name);
        continue;
      }
      const local = name.slice(prefix.length);
      if (local in params) continue;
      const alias = aliases.get(local);
      if (alias) {
        if (!sameShape(alias(), v.shape)) report.mismatched.push({ name, expected: [...alias()], got: [...v.shape] });
        else report.ignored.push(name);
      } else if (ignored.some((re) => re.test(local))) {
        report.ignored.push(name);
      } else {
        report.unexpected.push(name);
      }
    }
    if (strict && (report.missing.length || report.unexpected.length || report.mismatched.length)) {
      throw new FormatError(`loadStateDict: the state dict does not fit this ${this.constructor.name}:${describeProblems(report)}`);
    }
    for (const [local, v] of updates) this.setParameter(local, v);
    return report;
  }

  /**
   * Runs fn with forward seeing `view(master, name)` in place of every parameter (the mixed-precision
   * policy's cast to the compute dtype). The views are made once, up front, in the caller's scope
   * (inside valueAndGrad, so gradients flow back through them to the masters); namedParameters and
   * stateDict keep returning the masters. Not reentrant.
   */
  withParameterView<T>(view: (master: Tensor, name: string) => Tensor, fn: () => T): T {
    const modules = this.#descendants();
    if (modules.some(([, m]) => m.#view)) throw new ArgumentError(`withParameterView: a view is already active in this ${this.constructor.name}`);
    try {
      for (const [prefix, m] of modules) m.#view = new Map([...m.#params].map(([n, t]) => [n, view(t, prefix + n)]));
      return fn();
    } finally {
      for (const [, m] of modules) m.#view = null;
    }
  }

  /**
   * Moves every parameter of this module and its descendants to `device` ('cpu', 'cuda' or
   * 'cuda:N'), in place: the module then holds the copies and the old tensors are disposed, so
   * tensors taken earlier from namedParameters() must not be used (take them again). Parameters
   * already there are left as they are. Modules hold no buffers (what HF keeps as one, kexue
   * recomputes), so parameters are everything. Inputs must be made on the same device. Returns
   * this. E_NO_CUDA / E_DEVICE for a device this machine lacks, before anything moves; should a
   * copy fail midway (E_OOM), the copies made so far are freed and the module is unchanged.
   */
  to(device: string): this {
    const modules = this.#descendants();
    if (modules.some(([, m]) => m.#view)) throw new ArgumentError(`to: a parameter view is active in this ${this.constructor.name}`);
    const canonical = device === 'cuda' ? 'cuda:0' : device; // Tensor.device is 'cpu' or 'cuda:N'
    const moves: { owner: Module; name: string; old: Tensor; moved: Tensor }[] = [];
    try {
      for (const [, owner] of modules) {
        for (const [name, old] of owner.#params) {
          if (old.device === canonical) continue;
          // to() checks the device name, so a bad one fails at the first copy, before anything moves
          moves.push({ owner, name, old, moved: keep(old.to(device)) });
        }
      }
    } catch (err) {
      dispose(moves.map((m) => m.moved));
      throw err;
    }
    for (const { owner, name, old, moved } of moves) {
      owner.#params.set(name, moved);
      old.dispose();
    }
    return this;
  }

  /**
   * Where the parameters are ('cpu' or 'cuda:N'), read from the first one ('cpu' for a module
   * without parameters): where its inputs must be made. `to` keeps them all on one device.
   */
  get device(): string {
    return this.parameters()[0]?.device ?? 'cpu';
  }

  /** Disposes every parameter. The module must not be used afterwards. */
  dispose(): void {
    dispose(this.parameters());
  }

  #resolve(path: string): { owner: Module; local: string } {
    const parts = path.split('.');
    let m: Module = this;
    for (const part of parts.slice(0, -1)) {
      const c = m.#children.get(part);
      if (!c) throw new ArgumentError(`no parameter '${path}'`);
      m = c;
    }
    const local = parts[parts.length - 1]!;
    if (!m.#params.has(local)) throw new ArgumentError(`no parameter '${path}'`);
    return { owner: m, local };
  }

  /** This module and every descendant, each with its dotted prefix. */
  #descendants(prefix = ''): [string, Module][] {
    return [[prefix, this], ...[...this.#children].flatMap(([n, c]) => c.#descendants(`${prefix}${n}.`))];
  }

  #allAliases(prefix = ''): Map<string, () => readonly number[]> {
    const out = new Map<string, () => readonly number[]>();
    for (const [n, s] of this.#aliases) out.set(prefix + n, s);
    for (const [n, c] of this.#children) for (const [k, v] of c.#allAliases(`${prefix}${n}.`)) out.set(k, v);
    return out;
  }

  #allIgnored(prefix = ''): RegExp[] {
    const esc = prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const out = this.#ignored.map((re) => new RegExp(`^${esc}(?:${re.source})`));
    for (const [n, c] of this.#children) out.push(...c.#allIgnored(`${prefix}${n}.`));
    return out;
  }
}

/** A readable list of a report's problems (for error messages). */
export function describeProblems(r: LoadReport): string {
  const lines: string[] = [];
  const list = (xs: string[]) => (xs.length > 12 ? `${xs.slice(0, 12).join(', ')} … (${xs.length} in all)` : xs.join(', '));
  if (r.missing.length) lines.push(`missing: ${list(r.missing)}`);
  if (r.unexpected.length) lines.push(`unexpected: ${list(r.unexpected)}`);
  if (r.mismatched.length) {
    lines.push(`mis-shaped: ${list(r.mismatched.map((m) => `${m.name} (expected [${m.expected.join(', ')}], got [${m.got.join(', ')}])`))}`);
  }
  return lines.map((l) => `\n  ${l}`).join('');
}

function checkName(name: string): void {
  if (typeof name !== 'string' || name === '' || name.includes('.')) throw new ArgumentError(`bad member name '${String(name)}'`);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** A fresh copy of v with like's dtype and device (a real copy, so later in-place updates never touch v). */
function copyAs(v: Tensor, like: Tensor): Tensor {
  return tidy(() => {
    // cast first: float32 weights bound for a bfloat16 parameter on a GPU cross the bus at half size
    const c = cast(v, like.dtype);
    const moved = c.device === like.device ? c : c.to(like.device);
    return moved === v ? slice(v, v.shape.map(() => 0), [...v.shape]) : moved;
  });
}

/** An indexed list of modules, named 0, 1, … in state dicts (PyTorch's nn.ModuleList). */
export class ModuleList<M extends Module> extends Module {
  readonly items: M[];

  constructor(items: M[]) {
    super();
    this.items = items.map((m, i) => this.addModule(String(i), m));
  }

  get length(): number {
    return this.items.length;
  }
}
