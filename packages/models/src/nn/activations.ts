/** Activation functions by their Hugging Face config names (hidden_act). */
import { ArgumentError, gelu, relu, silu, tanh, type Tensor } from '@kexue/core-cuda';

export type ActivationName = 'gelu' | 'gelu_new' | 'gelu_pytorch_tanh' | 'relu' | 'silu' | 'swish' | 'tanh';

/** The activation of a config's hidden_act: gelu (erf), gelu_new/gelu_pytorch_tanh (tanh approximation), relu, silu/swish, tanh. */
export function activation(name: string): (x: Tensor) => Tensor {
  switch (name) {
    case 'gelu':
      return (x) => gelu(x);
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
      return (x) => gelu(x, { approximate: 'tanh' });
    case 'relu':
      return relu;
    case 'silu':
    case 'swish':
      return silu;
    case 'tanh':
      return tanh;
    default:
      throw new ArgumentError(`unknown activation '${name}' (known: gelu, gelu_new, gelu_pytorch_tanh, relu, silu, swish, tanh)`);
  }
}

/** GELU's approximation for a GELU activation name ('none' for gelu, 'tanh' for gelu_new / gelu_pytorch_tanh); null for the others. */
export function geluApproximate(name: string): 'none' | 'tanh' | null {
  if (name === 'gelu') return 'none';
  return name === 'gelu_new' || name === 'gelu_pytorch_tanh' ? 'tanh' : null;
}
