import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { parseHfBertConfig, parseHfConfig, parseHfT5Config, readHfBertConfig, readHfConfig, readHfT5Config } from '@kexue/models';

import { expectCode } from '../../core-cuda/test/helpers.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'kx-cfg-'));
function write(name: string, content: unknown): string {
  const file = path.join(dir, name);
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return file;
}

// As published with bert-base-chinese (Hugging Face hub).
const bertBaseChinese = {
  architectures: ['BertForMaskedLM'],
  attention_probs_dropout_prob: 0.1,
  directionality: 'bidi',
  hidden_act: 'gelu',
  hidden_dropout_prob: 0.1,
  hidden_size: 768,
  initializer_range: 0.02,
  intermediate_size: 3072,
  layer_norm_eps: 1e-12,
  max_position_embeddings: 512,
  model_type: 'bert',
  num_attention_heads: 12,
  num_hidden_layers: 12,
  pad_token_id: 0,
  pooler_fc_size: 768,
  pooler_num_attention_heads: 12,
  pooler_num_fc_layers: 3,
  pooler_size_per_head: 128,
  pooler_type: 'first_token_transform',
  type_vocab_size: 2,
  vocab_size: 21128,
};

// Google's chinese_L-12_H-768_A-12/bert_config.json: no model_type.
const googleBert = {
  attention_probs_dropout_prob: 0.1,
  directionality: 'bidi',
  hidden_act: 'gelu',
  hidden_dropout_prob: 0.1,
  hidden_size: 768,
  initializer_range: 0.02,
  intermediate_size: 3072,
  max_position_embeddings: 512,
  num_attention_heads: 12,
  num_hidden_layers: 12,
  type_vocab_size: 2,
  vocab_size: 21128,
};

// A T5 PEGASUS port (mT5 architecture, Chinese vocabulary).
const t5Pegasus = {
  architectures: ['MT5ForConditionalGeneration'],
  d_ff: 2048,
  d_kv: 64,
  d_model: 768,
  decoder_start_token_id: 0,
  dropout_rate: 0.1,
  eos_token_id: 1,
  feed_forward_proj: 'gated-gelu',
  initializer_factor: 1.0,
  is_encoder_decoder: true,
  layer_norm_epsilon: 1e-6,
  model_type: 'mt5',
  num_decoder_layers: 12,
  num_heads: 12,
  num_layers: 12,
  output_past: true,
  pad_token_id: 0,
  relative_attention_num_buckets: 32,
  tie_word_embeddings: false,
  tokenizer_class: 'BertTokenizer',
  vocab_size: 50000,
};

// t5-small as published (abridged task_specific_params).
const t5Small = {
  architectures: ['T5ForConditionalGeneration'],
  d_ff: 2048,
  d_kv: 64,
  d_model: 512,
  decoder_start_token_id: 0,
  dropout_rate: 0.1,
  eos_token_id: 1,
  initializer_factor: 1.0,
  is_encoder_decoder: true,
  layer_norm_epsilon: 1e-6,
  model_type: 't5',
  n_positions: 512,
  num_heads: 8,
  num_layers: 6,
  output_past: true,
  pad_token_id: 0,
  relative_attention_num_buckets: 32,
  task_specific_params: { summarization: { prefix: 'summarize: ', num_beams: 4 } },
  vocab_size: 32128,
};

describe('config.json readers', () => {
  it('reads a Hugging Face BERT config, keeping the keys it does not interpret', () => {
    const c = readHfConfig(write('bert.json', bertBaseChinese));
    expect(c.modelType).toBe('bert');
    if (c.modelType !== 'bert' && c.modelType !== 'roformer') throw new Error('not bert');
    expect(c).toMatchObject({
      vocabSize: 21128, hiddenSize: 768, numHiddenLayers: 12, numAttentionHeads: 12, intermediateSize: 3072,
      hiddenAct: 'gelu', hiddenDropoutProb: 0.1, attentionProbsDropoutProb: 0.1, maxPositionEmbeddings: 512,
      typeVocabSize: 2, initializerRange: 0.02, layerNormEps: 1e-12, padTokenId: 0, positionEmbeddingType: 'absolute',
      embeddingSize: 768, architectures: ['BertForMaskedLM'],
    });
    expect(c.extra).toEqual({
      directionality: 'bidi', pooler_fc_size: 768, pooler_num_attention_heads: 12, pooler_num_fc_layers: 3,
      pooler_size_per_head: 128, pooler_type: 'first_token_transform',
    });
  });

  it("reads Google's bert_config.json (no model_type) with BertConfig's defaults for what it lacks", () => {
    const c = readHfBertConfig(write('bert_config.json', googleBert));
    expect(c.modelType).toBe('bert');
    expect(c.layerNormEps).toBe(1e-12);
    expect(c.padTokenId).toBe(0);
    expect(readHfConfig(write('bert_config2.json', googleBert)).modelType).toBe('bert');
  });

  it('reads RoFormer configs (embedding_size defaults to hidden_size)', () => {
    const c = parseHfBertConfig({ model_type: 'roformer', hidden_size: 384, num_attention_heads: 6, rotary_value: true });
    expect(c).toMatchObject({ modelType: 'roformer', vocabSize: 50000, maxPositionEmbeddings: 1536, embeddingSize: 384, rotaryValue: true });
    expect(parseHfBertConfig({ model_type: 'roformer', embedding_size: 128 }).embeddingSize).toBe(128);
  });

  it('reads T5 and mT5 configs with their different defaults', () => {
    const s = readHfT5Config(write('t5.json', t5Small));
    expect(s).toMatchObject({
      modelType: 't5', vocabSize: 32128, dModel: 512, dKv: 64, dFf: 2048, numLayers: 6, numDecoderLayers: 6, numHeads: 8,
      relativeAttentionNumBuckets: 32, relativeAttentionMaxDistance: 128, feedForwardProj: 'relu', isGatedAct: false,
      denseActFn: 'relu', tieWordEmbeddings: true, padTokenId: 0, eosTokenId: 1, decoderStartTokenId: 0,
    });
    expect(s.extra).toEqual({ n_positions: 512, output_past: true, task_specific_params: { summarization: { prefix: 'summarize: ', num_beams: 4 } } });
    const p = readHfConfig(write('pegasus.json', t5Pegasus));
    expect(p).toMatchObject({ modelType: 'mt5', vocabSize: 50000, dModel: 768, numLayers: 12, numDecoderLayers: 12, numHeads: 12, isGatedAct: true, denseActFn: 'gelu_new', tieWordEmbeddings: false });
    // Defaults: T5Config vs MT5Config; num_decoder_layers null or absent means num_layers.
    expect(parseHfT5Config({ model_type: 'mt5' })).toMatchObject({ vocabSize: 250112, dFf: 1024, numLayers: 8, numDecoderLayers: 8, numHeads: 6, feedForwardProj: 'gated-gelu', tieWordEmbeddings: false });
    expect(parseHfT5Config({ num_layers: 4, num_decoder_layers: null })).toMatchObject({ modelType: 't5', numLayers: 4, numDecoderLayers: 4, vocabSize: 32128 });
    expect(parseHfT5Config({ feed_forward_proj: 'gated-silu', pad_token_id: null })).toMatchObject({ isGatedAct: true, denseActFn: 'silu', padTokenId: null });
    expect(readHfT5Config(write('t5_no_type.json', { d_model: 64 }), 'mt5').vocabSize).toBe(250112);
  });

  it('rejects wrong types and inconsistent values with E_FORMAT naming the key', () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ ...bertBaseChinese, hidden_size: '768' }, /"hidden_size" is "768", expected an integer ≥ 1/],
      [{ ...bertBaseChinese, num_hidden_layers: 12.5 }, /"num_hidden_layers" is 12.5/],
      [{ ...bertBaseChinese, hidden_dropout_prob: 1.5 }, /"hidden_dropout_prob" is 1.5, expected a number in \[0, 1\)/],
      [{ ...bertBaseChinese, layer_norm_eps: -1 }, /"layer_norm_eps"/],
      [{ ...bertBaseChinese, hidden_act: 3 }, /"hidden_act" is 3, expected a string/],
      [{ ...bertBaseChinese, architectures: 'BertModel' }, /"architectures"/],
      [{ ...bertBaseChinese, num_attention_heads: 7 }, /not a multiple of num_attention_heads 7/],
      [{ ...bertBaseChinese, pad_token_id: 21128 }, /pad_token_id 21128 is outside the vocabulary/],
      [{ ...bertBaseChinese, embedding_size: 128 }, /embedding_size 128 differs from hidden_size/],
      [{ ...t5Pegasus, feed_forward_proj: 'gated gelu' }, /"feed_forward_proj" is "gated gelu"/],
      [{ ...t5Pegasus, tie_word_embeddings: 'false' }, /"tie_word_embeddings" is "false", expected true or false/],
      [{ ...t5Pegasus, eos_token_id: 50000 }, /eos_token_id 50000 is outside the vocabulary/],
      [{ ...t5Pegasus, num_layers: 0 }, /"num_layers" is 0/],
      [{ model_type: 'gpt2', n_embd: 768 }, /model_type "gpt2" is not supported/],
      [{ n_embd: 768 }, /no "model_type"/],
    ];
    for (const [json, pattern] of cases) {
      const file = write('bad.json', json);
      const err = expectCode(() => readHfConfig(file), 'E_FORMAT');
      expect(err.message).toMatch(pattern);
      expect(err.message).toContain(file);
    }
    expect(expectCode(() => readHfBertConfig(write('t5_as_bert.json', t5Small)), 'E_FORMAT').message).toMatch(/"model_type" is "t5", not "bert"/);
    expect(expectCode(() => readHfT5Config(write('bert_as_t5.json', bertBaseChinese)), 'E_FORMAT').message).toMatch(/"model_type" is "bert", not "t5"/);
    // null where a value is required means the default (transformers writes nulls for unset options).
    expect(parseHfConfig({ model_type: 'bert', vocab_size: null, hidden_size: 64, num_attention_heads: 4 })).toMatchObject({ vocabSize: 30522, hiddenSize: 64 });
  });

  it('reports unreadable files (E_IO) and invalid JSON (E_FORMAT)', () => {
    const missing = path.join(dir, 'missing.json');
    const e1 = expectCode(() => readHfConfig(missing), 'E_IO');
    expect(e1.message).toContain('missing.json');
    expectCode(() => readHfConfig(dir), 'E_IO');
    const e2 = expectCode(() => readHfConfig(write('broken.json', '{"hidden_size": 768,')), 'E_FORMAT');
    expect(e2.message).toMatch(/not valid JSON/);
    expect(expectCode(() => readHfConfig(write('list.json', '[1, 2]')), 'E_FORMAT').message).toMatch(/must be a JSON object/);
  });
});
