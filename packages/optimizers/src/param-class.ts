/**
 * Tiger's parameter classes (ALGORITHMS.md §1.2, §1.5), decided by name as in the reference code,
 * or given explicitly.
 *
 *   'bias'      element-wise offsets (dense biases, norm β): lr 0.5·α, no weight decay, centre 0
 *   'scale'     norm scales (γ): lr 0.5·α, no weight decay, centre 1
 *   'embedding' embedding tables: lr α·RMS(row) per row (last axis), weight decay, centre 0
 *   'matrix'    everything else: lr α·RMS(tensor), weight decay, centre 0
 */
import type { Tensor } from '@kexue/core-cuda';

export type TigerParamClass = 'bias' | 'scale' | 'embedding' | 'matrix';

export const TIGER_PARAM_CLASSES: readonly TigerParamClass[] = ['bias', 'scale', 'embedding', 'matrix'];

/**
 * The reference code's rule: /bias|beta|gamma/ anywhere in the name first ('scale' when the name
 * contains 'gamma', else 'bias'), then 'embeddings' anywhere in the name, else 'matrix'.
 */
export function tigerParamClass(name: string): TigerParamClass {
  if (/bias|beta|gamma/.test(name)) return name.includes('gamma') ? 'scale' : 'bias';
  if (name.includes('embeddings')) return 'embedding';
  return 'matrix';
}

/**
 * A rule for Hugging Face-style names, where norm scales are called `...LayerNorm.weight` or
 * `...layer_norm.weight` and embeddings `...embeddings...` or `...embed_tokens...`: norm weights are
 * 'scale', `.bias` is 'bias', embedding tables 'embedding'; anything else falls back to
 * tigerParamClass. Pass it as Tiger's `paramClass` option.
 */
export function hfParamClass(name: string): TigerParamClass {
  if (/(^|\.)bias$/.test(name)) return 'bias';
  if (/(norm|(^|\.)ln)[^.]*\.weight$/i.test(name)) return 'scale';
  if (/embeddings|embed_tokens/.test(name)) return 'embedding';
  return tigerParamClass(name);
}

/** Explicit classes by name, or a function (returning undefined to fall back to the name rule). */
export type ParamClassOption =
  | Readonly<Record<string, TigerParamClass>>
  | ((name: string, param: Tensor) => TigerParamClass | undefined);
