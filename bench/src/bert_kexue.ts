/** kexue's BERT of the bench's cases that load the shared weights (inference, sentence encoding). */
import * as kx from '@kexue/core-cuda';
import { BertModel } from '@kexue/models';

import type { BertInputs, BertSizes } from './bert_files.js';

/** kexue's BERT for inference: runs a point, or returns its last hidden state to compare. */
export interface KexueBert {
  run(inputs: BertInputs): void;
  lastHiddenState(inputs: BertInputs): Float32Array;
  dispose(): void;
}

/**
 * The bench's BERT of these sizes as a user serving a checkpoint builds it: BertModel.fromPretrained
 * (no random initialisation: the file's tensors become the parameters, eval mode).
 */
export function loadKexueBert(sizes: BertSizes, weights: string): BertModel {
  return BertModel.fromPretrained({
    config: { kind: 'bert', vocabSize: sizes.vocab, hiddenSize: sizes.hidden, numLayers: sizes.layers, numHeads: sizes.heads, intermediateSize: sizes.ffn },
    weights,
  });
}

/**
 * kexue's side of the inference cases: loadKexueBert, and each forward in a tidy scope with
 * `hiddenStates: false`, so that every block's activations are freed once the next block has used them.
 * `compiled`: the forward through kx.compile (traced at the first call of a shape, then replayed in
 * one addon call), as a server that compiles its model's forward runs it.
 */
export function kexueBert(sizes: BertSizes, weights: string, compiled = false): KexueBert {
  const model = loadKexueBert(sizes, weights);
  const encode = (ids: kx.Tensor, mask: kx.Tensor) => model.forward(ids, { attentionMask: mask, hiddenStates: false }).lastHiddenState;
  const run = compiled ? kx.compile(encode, { name: 'bert-forward' }) : encode;
  const forward = (x: BertInputs) => run(kx.tensor(x.ids, [x.batch, x.seq], { dtype: 'int32' }), kx.ones([x.batch, x.seq], { dtype: 'uint8' }));
  return {
    run: (x) => kx.tidy(() => void forward(x)),
    lastHiddenState: (x) => kx.tidy(() => forward(x).toFloat32Array().slice()),
    dispose: () => model.dispose(),
  };
}
