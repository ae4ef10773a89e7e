/**
 * Fused optimizer updates (native/ops/optim/, element math in ops/optim/math.h). Each call updates one
 * parameter tensor and its float32 state IN PLACE, in one pass (Tiger: a reduction pre-pass first).
 * These are the building blocks of @kexue/optimizers; they are not recorded by autograd, and calling
 * them while a gradient tape is recording is E_ARG.
 */
import { ArgumentError, ShapeError } from '../errors.js';
import { runKernel, runKernel1 } from '../kernel.js';
import { sameShape, fmtShape } from '../shape.js';
import { activeTape, type Attrs } from '../tape.js';
import type { Tensor } from '../tensor.js';
import { assertDTypeOf, assertFloat } from './check.js';

function checkUpdate(op: string, param: Tensor, grad: Tensor, state: (Tensor | null)[]): void {
  if (activeTape()) throw new ArgumentError(`${op}: optimizer updates mutate tensors and cannot run inside valueAndGrad`);
  assertFloat(param, op, 'param');
  assertFloat(grad, op, 'grad');
  if (!sameShape(grad.shape, param.shape)) {
    throw new ShapeError(`${op}: grad has shape ${fmtShape(grad.shape)}, the parameter ${fmtShape(param.shape)}`);
  }
  for (const s of state) {
    if (s === null) continue;
    assertDTypeOf(s, 'float32', op, 'state');
    if (!sameShape(s.shape, param.shape)) {
      throw new ShapeError(`${op}: state has shape ${fmtShape(s.shape)}, the parameter ${fmtShape(param.shape)}`);
    }
  }
}

/** Runs an in-place update and counts it on the parameters it moved (Tensor.version). */
function update(op: string, inputs: (Tensor | null)[], params: readonly Tensor[], attrs: Attrs): Tensor[] {
  const out = runKernel(op, inputs, attrs);
  for (const p of params) p.version++;
  return out;
}

function finite(op: string, name: string, v: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ArgumentError(`${op}: ${name} must be a finite number, got ${v}`);
  return v;
}

/** How Tiger scales a parameter's learning rate: not at all, by the tensor's RMS, or per row. */
export type TigerRmsMode = 'none' | 'tensor' | 'row';

export interface TigerUpdateOptions {
  /** The learning rate before the RMS factor (α·schedule, already halved for bias-like tensors). */
  lr: number;
  beta: number;
  /** k, the micro-steps per update. */
  accumSteps: number;
  /** First micro-step of an accumulation group: the momentum decays by β (else by 1). */
  first: boolean;
  /** Last micro-step of the group: the parameter moves (else only the momentum changes). */
  update: boolean;
  rms: TigerRmsMode;
  weightDecay: number;
  /** The non-finite guard's shrink ratio s and centre c: θ ← (θ − c)·s + c. */
  shrink: number;
  centre: number;
  /** Multiplies the gradient first (loss-scale unscaling, clipping); default 1. */
  gradScale?: number;
}

/**
 * One Tiger micro-step (ALGORITHMS.md §1.1, §1.3, §1.5), in place on param and m. Returns a [1]
 * uint8 tensor on param's device: 1, or 0 when grad held NaN or ±Inf (then m was kept
 * and param shrunk toward its centre). A tensor rather than a boolean so that nothing waits: on a
 * GPU, reading it waits for the update (the optimizer reads all of a step's flags at once, later).
 */
export function tigerUpdate(param: Tensor, grad: Tensor, m: Tensor, o: TigerUpdateOptions): Tensor {
  const op = 'tigerUpdate';
  checkUpdate(op, param, grad, [m]);
  return update('optim_tiger', [param, grad, m], [param], tigerAttrs(op, o))[0]!;
}

/** The attributes optim_tiger / optim_tiger_group run with for these options (E_ARG for a non-finite one), as adamwAttrs. */
export function tigerAttrs(op: string, o: TigerUpdateOptions): Attrs {
  return {
    lr: finite(op, 'lr', o.lr),
    beta: finite(op, 'beta', o.beta),
    accumSteps: finite(op, 'accumSteps', o.accumSteps),
    first: o.first,
    update: o.update,
    rms: o.rms,
    weightDecay: finite(op, 'weightDecay', o.weightDecay),
    shrink: finite(op, 'shrink', o.shrink),
    centre: finite(op, 'centre', o.centre),
    gradScale: finite(op, 'gradScale', o.gradScale ?? 1),
  };
}

/** One parameter of tigerUpdateGroup: its gradient and its momentum. */
export interface TigerSlot {
  param: Tensor;
  grad: Tensor;
  m: Tensor;
}

/**
 * tigerUpdate on every parameter of a non-empty list, with the same options, in one call (the
 * host's cost of one op, not one per parameter). Returns a [k] uint8 tensor of the k verdicts, in
 * order, on the parameters' device. Everything is checked before anything moves.
 */
export function tigerUpdateGroup(slots: readonly TigerSlot[], o: TigerUpdateOptions): Tensor {
  const op = 'tigerUpdateGroup';
  if (slots.length === 0) throw new ArgumentError(`${op}: no parameters`);
  for (const s of slots) checkUpdate(op, s.param, s.grad, [s.m]);
  return update('optim_tiger_group', slots.flatMap((s) => [s.param, s.grad, s.m]), slots.map((s) => s.param), tigerAttrs(op, o))[0]!;
}

export interface LionUpdateOptions {
  lr: number;
  beta1: number;
  beta2: number;
  weightDecay: number;
  gradScale?: number;
}

/** One Lion step (ALGORITHMS.md §1.9), in place on param and m. */
export function lionUpdate(param: Tensor, grad: Tensor, m: Tensor, o: LionUpdateOptions): void {
  const op = 'lionUpdate';
  checkUpdate(op, param, grad, [m]);
  update('optim_lion', [param, grad, m], [param], lionAttrs(op, o));
}

/** The attributes optim_lion runs with for these options (E_ARG for a non-finite one), as adamwAttrs. */
export function lionAttrs(op: string, o: LionUpdateOptions): Attrs {
  return {
    lr: finite(op, 'lr', o.lr),
    beta1: finite(op, 'beta1', o.beta1),
    beta2: finite(op, 'beta2', o.beta2),
    weightDecay: finite(op, 'weightDecay', o.weightDecay),
    gradScale: finite(op, 'gradScale', o.gradScale ?? 1),
  };
}

export interface AdamWUpdateOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based count of this parameter's updates (bias correction). */
  step: number;
  gradScale?: number;
}

/** One AdamW step as torch.optim.AdamW (decoupled decay, bias-corrected), in place on param, m, v. */
export function adamwUpdate(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, o: AdamWUpdateOptions): void {
  const op = 'adamwUpdate';
  checkUpdate(op, param, grad, [m, v]);
  update('optim_adamw', [param, grad, m, v], [param], adamwAttrs(op, o));
}

/**
 * The attributes optim_adamw / optim_adamw_group run with for these options (E_ARG for a
 * non-finite one): what an optimizer hands kx.dynamicAttrs to recompute a traced update's options at
 * each replay of a compiled step.
 */
export function adamwAttrs(op: string, o: AdamWUpdateOptions): Attrs {
  return {
    lr: finite(op, 'lr', o.lr),
    beta1: finite(op, 'beta1', o.beta1),
    beta2: finite(op, 'beta2', o.beta2),
    eps: finite(op, 'eps', o.eps),
    weightDecay: finite(op, 'weightDecay', o.weightDecay),
    step: finite(op, 'step', o.step),
    gradScale: finite(op, 'gradScale', o.gradScale ?? 1),
  };
}

/** One parameter of adamwUpdateGroup: its gradient and its two state tensors. */
export interface AdamWSlot {
  param: Tensor;
  grad: Tensor;
  m: Tensor;
  v: Tensor;
}

/**
 * adamwUpdate on every parameter of a list, with the same options, in one call: a training step's
 * ~200 updates then cost the host one op instead of ~200. Everything is checked before anything
 * moves.
 */
export function adamwUpdateGroup(slots: readonly AdamWSlot[], o: AdamWUpdateOptions): void {
  const op = 'adamwUpdateGroup';
  if (slots.length === 0) return;
  for (const s of slots) checkUpdate(op, s.param, s.grad, [s.m, s.v]);
  update('optim_adamw_group', slots.flatMap((s) => [s.param, s.grad, s.m, s.v]), slots.map((s) => s.param), adamwAttrs(op, o));
}

export interface SgdUpdateOptions {
  lr: number;
  momentum: number;
  dampening: number;
  nesterov: boolean;
  weightDecay: number;
  /** The momentum buffer is new and takes the first gradient as it is (torch's rule). */
  first: boolean;
  gradScale?: number;
}

/** One SGD step as torch.optim.SGD, in place on param and the momentum buffer (null without momentum). */
export function sgdUpdate(param: Tensor, grad: Tensor, buf: Tensor | null, o: SgdUpdateOptions): void {
  const op = 'sgdUpdate';
  checkUpdate(op, param, grad, [buf]);
  if (o.momentum !== 0 && buf === null) throw new ArgumentError(`${op}: momentum ${o.momentum} needs a buffer`);
  update('optim_sgd', [param, grad, buf], [param], sgdAttrs(op, o));
}

/** The attributes optim_sgd runs with for these options (E_ARG for a non-finite one), as adamwAttrs. */
export function sgdAttrs(op: string, o: SgdUpdateOptions): Attrs {
  return {
    lr: finite(op, 'lr', o.lr),
    momentum: finite(op, 'momentum', o.momentum),
    dampening: finite(op, 'dampening', o.dampening),
    nesterov: o.nesterov,
    weightDecay: finite(op, 'weightDecay', o.weightDecay),
    first: o.first,
    gradScale: finite(op, 'gradScale', o.gradScale ?? 1),
  };
}

/**
 * √(Σ x²) over all the tensors (accumulated in double), as a number: the global gradient norm for
 * clipping, NaN or Infinity when any element is non-finite. 0 for an empty list.
 */
export function globalNorm(xs: readonly Tensor[]): number {
  if (xs.length === 0) return 0;
  const out = globalNormTensor(xs);
  const v = out.dataSync()[0]!;
  out.dispose();
  return v;
}

/**
 * globalNorm without reading it: a float32 scalar tensor on the tensors' device (so a step that
 * clips stays on the device, and can run inside kx.compile). The list must not be empty (E_ARG).
 */
export function globalNormTensor(xs: readonly Tensor[]): Tensor {
  if (xs.length === 0) throw new ArgumentError('globalNormTensor: no tensors');
  xs.forEach((x, i) => assertFloat(x, 'globalNorm', `xs[${i}]`));
  return runKernel1('optim_global_norm', [...xs]);
}

/**
 * Global-norm clipping's factor on the device: a float32 scalar tensor, min(1, maxNorm / (n + 1e-6))
 * where n = norm · scale (the norm of the gradients as the update will see them), and 1 when n is
 * not finite: what Optimizer.step multiplies its gradient scale by when it reads the norm on the
 * host. `norm` is a one-element floating tensor (E_SHAPE otherwise); maxNorm > 0 (E_ARG otherwise).
 */
export function clipFactor(norm: Tensor, maxNorm: number, scale = 1): Tensor {
  assertFloat(norm, 'clipFactor', 'norm');
  if (norm.size !== 1) throw new ShapeError(`clipFactor: norm must have one element, got ${norm.describe()}`);
  if (!(finite('clipFactor', 'maxNorm', maxNorm) > 0)) throw new ArgumentError(`clipFactor: maxNorm must be > 0, got ${maxNorm}`);
  return runKernel1('optim_clip_factor', [norm], { maxNorm, scale: finite('clipFactor', 'scale', scale) });
}
