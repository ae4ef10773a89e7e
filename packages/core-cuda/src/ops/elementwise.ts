/**
 * Elementwise ops: add, sub, mul, div and where with NumPy broadcasting (broadcastTo and sumTo are
 * in ops/broadcast); the unary functions (neg, exp, log, sqrt, rsqrt, tanh, sigmoid, relu, silu,
 * gelu, pow by a scalar).
 * Inputs are float32/float16/bfloat16; outputs keep the input dtype; the math runs in float32.
 */
import { asTensor } from '../creation.js';
import { ArgumentError, DTypeError } from '../errors.js';
import { runKernel1 } from '../kernel.js';
import { dispose } from '../memory.js';
import { broadcastShapes, sameShape } from '../shape.js';
import { registerGradient, type Attrs } from '../tape.js';
import { Tensor, type TensorLike } from '../tensor.js';
import { sumTo } from './broadcast.js';
import { assertDTypeOf, assertFloat, optionsOf } from './check.js';

function checkFloat(op: string, x: unknown, role = 'x'): Tensor {
  assertFloat(x, op, role);
  return x;
}

/**
 * Resolves two operands where either may be a number (a scalar of the other's dtype and device).
 * Returns the tensors and those made here, which the caller disposes after the call.
 */
function operands(op: string, a: TensorLike, b: TensorLike): { ta: Tensor; tb: Tensor; temps: Tensor[] } {
  if (!(a instanceof Tensor) && !(b instanceof Tensor)) {
    throw new ArgumentError(`${op}: at least one operand must be a Tensor`);
  }
  const like = (a instanceof Tensor ? a : b) as Tensor;
  checkFloat(op, like, a instanceof Tensor ? 'a' : 'b');
  const temps: Tensor[] = [];
  const resolve = (v: TensorLike, role: string): Tensor => {
    if (typeof v === 'number') {
      const t = asTensor(v, like);
      temps.push(t);
      return t;
    }
    return checkFloat(op, v, role);
  };
  const ta = resolve(a, 'a');
  const tb = resolve(b, 'b');
  if (ta.dtype !== tb.dtype) {
    dispose(temps);
    throw dtypesDiffer(op, ta, tb);
  }
  return { ta, tb, temps };
}

function dtypesDiffer(op: string, a: Tensor, b: Tensor): DTypeError {
  return new DTypeError(`${op}: dtypes ${a.dtype} and ${b.dtype} differ (cast one first)`);
}

function binary(op: 'add' | 'sub' | 'mul' | 'div', a: TensorLike, b: TensorLike): Tensor {
  // Two tensors, the common case (every add of a model), go straight to the op: resolving scalar
  // operands (a closure, a result object, a try/finally) cost about 0.4 µs a call.
  if (a instanceof Tensor && b instanceof Tensor) return binaryOfTensors(op, a, b);
  const { ta, tb, temps } = operands(op, a, b);
  try {
    return binaryOfTensors(op, ta, tb);
  } finally {
    dispose(temps);
  }
}

/** The op on two float tensors of one dtype whose shapes broadcast. */
function binaryOfTensors(op: 'add' | 'sub' | 'mul' | 'div', a: Tensor, b: Tensor): Tensor {
  checkFloat(op, a, 'a');
  checkFloat(op, b, 'b');
  if (a.dtype !== b.dtype) throw dtypesDiffer(op, a, b);
  broadcastShapes(a.shape, b.shape, op);
  return runKernel1(op, [a, b]);
}

/** a + b, broadcast like NumPy; a number is a scalar of the other operand's dtype. */
export function add(a: TensorLike, b: TensorLike): Tensor {
  return binary('add', a, b);
}

/** a − b, broadcast like NumPy; a number is a scalar of the other operand's dtype. */
export function sub(a: TensorLike, b: TensorLike): Tensor {
  return binary('sub', a, b);
}

/** a · b, broadcast like NumPy; a number is a scalar of the other operand's dtype. */
export function mul(a: TensorLike, b: TensorLike): Tensor {
  return binary('mul', a, b);
}

/** a / b (IEEE: x/0 is ±inf, 0/0 NaN), broadcast like NumPy; a number is a scalar of the other operand's dtype. */
export function div(a: TensorLike, b: TensorLike): Tensor {
  return binary('div', a, b);
}

/**
 * cond ? a : b elementwise, cond a uint8 mask (nonzero = true); the three shapes broadcast
 * together. A number for a or b is a scalar of the other's dtype (e.g. where(mask, x, -Infinity)).
 */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  assertDTypeOf(cond, 'uint8', 'where', 'cond');
  const { ta, tb, temps } = operands('where', a, b);
  try {
    broadcastShapes(cond.shape, broadcastShapes(ta.shape, tb.shape, 'where'), 'where');
    return runKernel1('where', [cond, ta, tb]);
  } finally {
    dispose(temps);
  }
}

type UnaryName = 'neg' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'tanh' | 'sigmoid' | 'relu' | 'silu' | 'gelu' | 'pow';

function unary(fn: UnaryName, x: Tensor, attrs: Attrs = {}): Tensor {
  checkFloat(fn, x);
  return runKernel1('unary', [x], { fn, ...attrs });
}

/** −x. */
export function neg(x: Tensor): Tensor {
  return unary('neg', x);
}

/** eˣ. */
export function exp(x: Tensor): Tensor {
  return unary('exp', x);
}

/** Natural logarithm (NaN below 0, −inf at 0). */
export function log(x: Tensor): Tensor {
  return unary('log', x);
}

/** √x (NaN below 0). */
export function sqrt(x: Tensor): Tensor {
  return unary('sqrt', x);
}

/** 1/√x. */
export function rsqrt(x: Tensor): Tensor {
  return unary('rsqrt', x);
}

/** Hyperbolic tangent. */
export function tanh(x: Tensor): Tensor {
  return unary('tanh', x);
}

/** 1 / (1 + e⁻ˣ). */
export function sigmoid(x: Tensor): Tensor {
  return unary('sigmoid', x);
}

/** max(x, 0); its gradient at 0 is 0 (as PyTorch). */
export function relu(x: Tensor): Tensor {
  return unary('relu', x);
}

/** SiLU (swish): x · sigmoid(x). */
export function silu(x: Tensor): Tensor {
  return unary('silu', x);
}

export interface GeluOptions {
  /** 'none' (default): x·Φ(x) with erf; 'tanh': the tanh approximation (BERT's original). */
  approximate?: 'none' | 'tanh';
}

/** GELU, exact (erf) or tanh-approximated, as torch.nn.functional.gelu. */
export function gelu(x: Tensor, options?: GeluOptions): Tensor {
  const approximate = optionsOf(options, 'gelu').approximate ?? 'none';
  if (approximate !== 'none' && approximate !== 'tanh') {
    throw new ArgumentError(`gelu: approximate must be 'none' or 'tanh', got ${JSON.stringify(approximate)}`);
  }
  return unary('gelu', x, { approximate });
}

/** xᵖ for a number p (exact shortcuts for p = 0.5, 1, 2, 3, −1; NaN for x < 0 with fractional p). */
export function pow(x: Tensor, exponent: number): Tensor {
  if (typeof exponent !== 'number' || Number.isNaN(exponent)) {
    throw new ArgumentError(`pow: exponent must be a number, got ${String(exponent)}`);
  }
  return unary('pow', x, { exponent });
}

// ---- gradients ---------------------------------------------------------------------------------

/** dy summed down to an input's shape (a no-op when no broadcasting happened). */
function reduceTo(dy: Tensor, shape: readonly number[]): Tensor {
  return sameShape(dy.shape, shape) ? dy : sumTo(dy, shape);
}

registerGradient('add', ([dy], { inputs: [a, b] }) => (dy ? [reduceTo(dy, a!.shape), reduceTo(dy, b!.shape)] : []));

registerGradient('sub', ([dy], { inputs: [a, b] }) => (dy ? [reduceTo(dy, a!.shape), reduceTo(neg(dy), b!.shape)] : []));

registerGradient('mul', ([dy], { inputs: [a, b] }) =>
  dy ? [reduceTo(mul(dy, b!), a!.shape), reduceTo(mul(dy, a!), b!.shape)] : [],
);

// d(a/b)/db = −a/b² = −y/b.
registerGradient('div', ([dy], { inputs: [a, b], outputs: [y] }) =>
  dy ? [reduceTo(div(dy, b!), a!.shape), reduceTo(neg(div(mul(dy, y!), b!)), b!.shape)] : [],
);

registerGradient('where', ([dy], { inputs: [cond, a, b] }) =>
  dy ? [null, reduceTo(where(cond!, dy, 0), a!.shape), reduceTo(where(cond!, 0, dy), b!.shape)] : [],
);

registerGradient('unary', ([dy], { inputs: [x], outputs: [y], attrs }) =>
  dy ? [runKernel1('unary_backward', [x!, y!, dy], attrs)] : [],
);
