/**
 * The Module system: a tree of modules with named parameters (dotted paths that follow Hugging
 * Face's state-dict names), train/eval modes, and state dicts that load by name with a report of
 * what was missing, unexpected or mis-shaped.
 *
 * Parameters are float tensors owned by their module (kept out of every tidy scope); loading or
 * `setParameter` replaces them. Optimizers receive `namedParameters()` (a name → Tensor record) and
 * may update those tensors in place.
 *
 * `loadModule` builds a module straight from a state dict: its constructor runs with every
 * initialiser skipped (parameters are only declared, by shape), and the state dict's tensors then
 * become the parameters themselves, with no copy.
 */
import { ArgumentError, FormatError, Tensor, cast, dispose, keep, slice, tidy, type DType } from '@kexue/core-cuda';

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

/** Options of loadModule. */
export interface ModuleLoadOptions {
  /** Prepended to every parameter name when looking it up (e.g. 'bert.' for a BertForMaskedLM file). */
  prefix?: string;
  /** Ignore state-dict entries no parameter takes (another head's) instead of refusing them. Default false. */
  partial?: boolean;
  /** Names the state dict in error messages (e.g. 'checkpoint runs/x/model.safetensors'); default 'the state dict'. */
  source?: string;
}

/** A parameter declared while a module is built for loading: its shape, no tensor (nor memory) yet. */
class Declared {
  constructor(readonly shape: readonly number[]) {}
}

/** How many loadModule builds are running (they may nest): while above 0, addParameter declares instead of initialising. */
let declaring = 0;

/** What a load will do: the report, and the values each parameter (by local path) will take. */
interface LoadPlan {
  report: LoadReport;
  updates: [string, Tensor][];
}

/** Module's private load steps, for loadModule (set by Module's static block). */
let planLoad!: (module: Module, stateDict: Record<string, Tensor>, prefix: string) => LoadPlan;
let applyLoad!: (module: Module, updates: [string, Tensor][], adopt: boolean) => void;

export abstract class Module {
  static {
    planLoad = (module, stateDict, prefix) => module.#plan(stateDict, prefix);
    applyLoad = (module, updates, adopt) => module.#apply(updates, adopt);
  }

  /** Own parameters in registration order; Declared only while loadModule builds and loads the module. */
  #params = new Map<string, Tensor | Declared>();
  #children = new Map<string, Module>();
  /** Names of state-dict entries that mirror a parameter held elsewhere (tied weights), with their shape. */
  #aliases = new Map<string, () => readonly number[]>();
  /** State-dict names (regular expressions on the local name) that are buffers, not parameters. */
  #ignored: RegExp[] = [];
  #training = true;
  /** What p() returns in place of each own parameter while withParameterView runs (else null). */
  #view: Map<string, Tensor> | null = null;

  /**
   * Registers a parameter under `name`: the tensor given, or one made by `init` from `rng`. While
   * loadModule builds the module, a parameter with an initialiser is only declared (the initialiser
   * does not run and `rng` is not drawn from): the load gives it its tensor.
   */
  protected addParameter(name: string, value: Tensor | { shape: readonly number[]; init: Initializer; rng: InitRng }): void {
    checkName(name);
    if (this.#params.has(name) || this.#children.has(name)) throw new ArgumentError(`module already has a member '${name}'`);
    if (value instanceof Tensor) this.#params.set(name, keep(value));
    else if (declaring > 0) this.#params.set(name, new Declared([...value.shape]));
    else this.#params.set(name, keep(value.init(value.shape, value.rng)));
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
    if (t instanceof Declared) throw notLoaded(name);
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
    for (const [n, t] of this.#slots(prefix)) {
      if (t instanceof Declared) throw notLoaded(n);
      out[n] = t;
    }
    return out;
  }

  /** Every parameter, loaded or only declared, under its dotted path, in registration order. */
  #slots(prefix = ''): [string, Tensor | Declared][] {
    const out: [string, Tensor | Declared][] = [];
    for (const [n, t] of this.#params) out.push([prefix + n, t]);
    for (const [n, c] of this.#children) out.push(...c.#slots(`${prefix}${n}.`));
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
    owner.#assign(local, value, false);
  }

  /**
   * Gives own parameter `local` the value (shape already checked). Copied (cast to the parameter's
   * dtype, on its device), or with `adopt` taken as it is (cast to the parameter's dtype where it
   * differs, the original then disposed), on the value's device. A declared parameter's dtype is
   * float32, what every initialiser makes. The previous tensor is disposed.
   */
  #assign(local: string, value: Tensor, adopt: boolean): void {
    const old = this.#params.get(local)!;
    const dtype = old instanceof Declared ? 'float32' : old.dtype;
    let t: Tensor;
    if (adopt) {
      t = cast(value, dtype);
      if (t !== value) value.dispose();
    } else {
      t = copyAs(value, dtype, old instanceof Declared ? value.device : old.device);
    }
    this.#params.set(local, keep(t));
    if (old instanceof Tensor && old !== t && old !== value) old.dispose();
  }

  /**
   * Loads parameters by name from a state dict (e.g. a safetensors file of a Hugging Face model).
   * Values are copied, cast to each parameter's dtype and put on its device (weights read on the CPU
   * load into a model already moved to a GPU); the given tensors stay the caller's.
   * See LoadReport and LoadOptions.
   */
  loadStateDict(stateDict: Record<string, Tensor>, options: LoadOptions = {}): LoadReport {
    const { strict = true, prefix = '' } = options;
    const { report, updates } = this.#plan(stateDict, prefix);
    const problems = misfit(report, false);
    if (strict && problems) throw new FormatError(`loadStateDict: the state dict does not fit this ${this.constructor.name}:${problems}`);
    this.#apply(updates, false);
    return report;
  }

  /** Matches a state dict's entries to the parameters (loaded or declared), changing nothing. */
  #plan(stateDict: Record<string, Tensor>, prefix: string): LoadPlan {
    if (stateDict === null || typeof stateDict !== 'object') throw new ArgumentError('loadStateDict: expected a record of tensors');
    const report: LoadReport = { loaded: [], missing: [], unexpected: [], mismatched: [], ignored: [] };
    const params = new Map(this.#slots());
    const aliases = this.#allAliases();
    const ignored = this.#allIgnored();
    const updates: [string, Tensor][] = [];
    for (const [local, t] of params) {
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
      if (params.has(local)) continue;
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
    return { report, updates };
  }

  /**
   * Gives each parameter its planned value: copies, or with `adopt` the values themselves (a
   * tensor planned for two parameters, as tied weights may be, is taken by the first and copied
   * for the others).
   */
  #apply(updates: [string, Tensor][], adopt: boolean): void {
    const taken = new Set<Tensor>();
    for (const [path, v] of updates) {
      const { owner, local } = this.#resolve(path);
      owner.#assign(local, v, adopt && !taken.has(v));
      taken.add(v);
    }
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
      for (const [prefix, m] of modules) m.#view = new Map([...m.#params].map(([n, t]) => [n, view(m.p(n), prefix + n)]));
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
          if (old instanceof Declared) throw notLoaded(name);
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

  /**
   * Disposes every parameter, and whatever each module below holds besides (a subclass's own
   * dispose runs: a Linear's packed weight). The module must not be used afterwards.
   */
  dispose(): void {
    dispose([...this.#params.values()].filter((t): t is Tensor => t instanceof Tensor));
    for (const child of this.#children.values()) child.dispose();
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

/**
 * Builds a module whose parameters come from `weights` instead of its initialisers: `build` (which
 * constructs it, e.g. `() => new BertModel(config)`) runs with every initialiser skipped, so no
 * random weights are drawn and no memory is filled twice; then every parameter takes its entry of
 * `weights` (looked up under `prefix`) as it is, with no copy (an entry of another dtype is cast to
 * float32). The parameters end up where the weights are: read them onto the device wanted.
 *
 * `weights` is consumed, whatever the outcome: each tensor becomes a parameter or is disposed, so
 * the caller must not use them afterwards. Every parameter must be there with its shape, and every
 * entry must be taken (unless `partial`), or nothing is built: E_FORMAT naming each missing,
 * unexpected and mis-shaped entry (as a strict loadStateDict). Tied copies and buffers a module
 * recomputes are accepted, as loadStateDict accepts them.
 */
export function loadModule<M extends Module>(build: () => M, weights: Record<string, Tensor>, options: ModuleLoadOptions = {}): M {
  const { prefix = '', partial = false, source = 'the state dict' } = options;
  let module: M | undefined;
  let built = false;
  try {
    declaring += 1;
    try {
      module = build();
    } finally {
      declaring -= 1;
    }
    const { report, updates } = planLoad(module, weights, prefix);
    const problems = misfit(report, partial);
    if (problems) throw new FormatError(`${source} does not fit this ${module.constructor.name}:${problems}`);
    applyLoad(module, updates, true);
    built = true;
    return module;
  } finally {
    if (!built) module?.dispose();
    const parameters = new Set(built ? module!.parameters() : []);
    for (const t of Object.values(weights)) if (t instanceof Tensor && !parameters.has(t)) t.dispose();
  }
}

/**
 * The problems of a load that make it fail, described (null when there are none): missing and
 * mis-shaped entries, and unexpected ones unless `partial` (entries of another head).
 */
export function misfit(report: LoadReport, partial: boolean): string | null {
  const problems = partial ? { ...report, unexpected: [] } : report;
  return problems.missing.length || problems.unexpected.length || problems.mismatched.length ? describeProblems(problems) : null;
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

/** A fresh copy of v in a dtype on a device (a real copy, so later in-place updates never touch v). */
function copyAs(v: Tensor, dtype: DType, device: string): Tensor {
  return tidy(() => {
    // cast first: float32 weights bound for a bfloat16 parameter on a GPU cross the bus at half size
    const c = cast(v, dtype);
    const moved = c.device === device ? c : c.to(device);
    return moved === v ? slice(v, v.shape.map(() => 0), [...v.shape]) : moved;
  });
}

function notLoaded(name: string): ArgumentError {
  return new ArgumentError(`parameter '${name}' was declared for loading and has not been loaded`);
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
