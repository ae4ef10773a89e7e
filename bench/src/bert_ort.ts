/** ONNX Runtime's side of the BERT inference cases (onnxruntime-node, imported when first used). */
import type { BertInputs } from './bert_files.js';

/** ONNX Runtime's side. */
export interface OrtBert {
  run(inputs: BertInputs): Promise<void>;
  lastHiddenState(inputs: BertInputs): Promise<Float32Array>;
  release(): Promise<void>;
}

/**
 * An ONNX Runtime session on the CPU as the bench runs it: `threads` intra-op threads, one
 * inter-op thread, every graph optimisation, sequential execution. Rejects when onnxruntime-node
 * cannot be loaded.
 */
export async function ortBert(onnx: string, threads: number): Promise<OrtBert> {
  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(onnx, {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
  });
  const feeds = (x: BertInputs) => {
    const dims = [x.batch, x.seq];
    const int64 = (v: (i: number) => bigint) => new ort.Tensor('int64', BigInt64Array.from({ length: x.ids.length }, (_, i) => v(i)), dims);
    return { input_ids: int64((i) => BigInt(x.ids[i]!)), attention_mask: int64(() => 1n), token_type_ids: int64(() => 0n) };
  };
  return {
    run: async (x) => void (await session.run(feeds(x))),
    lastHiddenState: async (x) => (await session.run(feeds(x))).last_hidden_state!.data as Float32Array,
    release: () => session.release(),
  };
}
