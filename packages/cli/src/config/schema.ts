/**
 * The config keys of each training task: name, type, default and meaning. A run's resolved config
 * is every key of its task with defaults filled in, nested by the dots (`train.batch_size` →
 * `{train: {batch_size}}`), which is what @kexue/models' NerConfig / MlmConfig types describe.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export type KeyType = 'integer' | 'number' | 'string' | 'boolean';

export interface KeySpec {
  key: string;
  type: KeyType;
  default: string | number | boolean;
  description: string;
  /** Allowed values (strings). */
  choices?: readonly string[];
  /** Smallest allowed value (numbers). */
  min?: number;
  /** Largest allowed value (numbers). */
  max?: number;
  /** A string key whose values follow a rule (a number in a config file is taken as its string). */
  check?: { ok: (value: string) => boolean; expected: string };
  /** The key may be changed when resuming a run (it changes no computed value, or only its rounding: the device). */
  resumable?: boolean;
  /** With resumable: a resume keeps the run's value unless overridden (the others start from their defaults again). */
  keptOnResume?: boolean;
}

/** Device names: 'cpu', 'cuda' (GPU 0) or 'cuda:N'. Whether this machine has the device is checked when the run starts (E_NO_CUDA, E_DEVICE). */
export const DEVICE_NAME = { ok: (v: string) => /^(cpu|cuda(:\d+)?)$/.test(v), expected: 'cpu, cuda or cuda:N' };

/** The repository root (the demo data lives there in a checkout). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
const demo = (p: string) => path.join(REPO_ROOT, 'data/demo', p);

const model = (defaults: { hidden: number; layers: number; heads: number; intermediate: number }): KeySpec[] => [
  { key: 'model.kind', type: 'string', default: 'roformer', choices: ['roformer', 'bert'], description: 'encoder: RoFormer (RoPE) or BERT (absolute positions)' },
  { key: 'model.hidden', type: 'integer', default: defaults.hidden, min: 2, description: 'hidden size' },
  { key: 'model.layers', type: 'integer', default: defaults.layers, min: 1, description: 'transformer layers' },
  { key: 'model.heads', type: 'integer', default: defaults.heads, min: 1, description: 'attention heads (must divide model.hidden)' },
  { key: 'model.intermediate', type: 'integer', default: defaults.intermediate, min: 1, description: 'feed-forward size' },
  { key: 'model.dropout', type: 'number', default: 0.1, min: 0, max: 0.99, description: 'hidden-state dropout' },
  { key: 'model.vocab', type: 'string', default: '', description: "vocab.txt ('' = the bundled bert-base-chinese vocabulary)" },
  { key: 'model.max_positions', type: 'integer', default: 512, min: 1, description: 'BERT position table size (RoFormer has none)' },
];

const optim = (schedule: string): KeySpec[] => [
  { key: 'optim.name', type: 'string', default: 'tiger', choices: ['tiger', 'lion', 'adamw'], description: 'optimizer' },
  { key: 'optim.lr', type: 'number', default: 0, min: 0, description: 'learning rate (0 = the optimizer\'s default: tiger 2e-3, lion 3e-4, adamw 1e-3)' },
  { key: 'optim.weight_decay', type: 'number', default: 0.01, min: 0, description: 'decoupled weight decay' },
  { key: 'optim.clip_norm', type: 'number', default: 0, min: 0, description: 'clip gradients to this global norm (0 = off)' },
  { key: 'optim.schedule', type: 'string', default: schedule, choices: ['constant', 'linear', 'cosine'], description: 'learning-rate schedule after the warm-up' },
  { key: 'optim.warmup', type: 'integer', default: 0, min: 0, description: 'linear warm-up, in updates' },
];

/** The mixed-precision keys (docs/training.md, "Mixed precision"). */
const precision: KeySpec[] = [
  { key: 'precision', type: 'string', default: 'fp32', choices: ['fp32', 'fp16', 'bf16'], description: 'compute dtype; fp16/bf16 keep float32 master weights and optimizer state' },
  {
    key: 'loss_scale',
    type: 'string',
    default: 'auto',
    check: { ok: (v) => ['auto', 'dynamic', 'none'].includes(v) || (v.trim() !== '' && Number(v) > 0 && Number.isFinite(Number(v))), expected: 'auto, dynamic, none or a number > 0' },
    description: 'loss scaling: auto (dynamic for fp16, none otherwise), dynamic, none, or a constant scale',
  },
];

/** Where the run computes (docs/training.md, "Devices"). */
const device: KeySpec = {
  key: 'device',
  type: 'string',
  default: 'cpu',
  check: DEVICE_NAME,
  resumable: true,
  keptOnResume: true,
  description: "where the run computes: cpu, cuda (GPU 0) or cuda:N; a resume keeps the run's unless given",
};

const train = (d: { batch: number; epochs: number; log: number }): KeySpec[] => [
  { key: 'train.batch_size', type: 'integer', default: d.batch, min: 1, description: 'records per micro-batch' },
  { key: 'train.epochs', type: 'number', default: d.epochs, min: 0, description: 'epochs (used when train.steps is 0)' },
  { key: 'train.steps', type: 'integer', default: 0, min: 0, description: 'optimizer updates in all (0 = from train.epochs)' },
  { key: 'train.grad_accum', type: 'integer', default: 1, min: 1, description: 'micro-batches per update (gradients averaged)' },
  { key: 'train.seed', type: 'integer', default: 42, min: 0, description: 'seed of the weights, the shuffles, dropout and masking' },
  { key: 'train.log_every', type: 'integer', default: d.log, min: 1, description: 'write a metrics.jsonl train record every N updates' },
  { key: 'train.eval_every', type: 'integer', default: 0, min: 0, description: 'evaluate every N updates (0 = every epoch); always at the end' },
  { key: 'train.save_every', type: 'integer', default: 0, min: 0, description: 'save the last checkpoint every N updates (0 = at evaluations and the end)' },
  { key: 'train.stop_at', type: 'integer', default: 0, min: 0, resumable: true, description: 'stop after N updates with a checkpoint, to continue with --resume (0 = never)' },
  { key: 'train.threads', type: 'integer', default: 0, min: 0, resumable: true, description: 'CPU threads (0 = KEXUE_NUM_THREADS or all cores)' },
];

/** `kexue train ner`. */
export const NER_KEYS: readonly KeySpec[] = [
  { key: 'data.train', type: 'string', default: demo('cluener/train.jsonl'), description: 'training file (default: the shipped CLUENER sample)' },
  { key: 'data.dev', type: 'string', default: demo('cluener/dev.jsonl'), description: "dev file, evaluated with P/R/F1 ('' = none)" },
  { key: 'data.format', type: 'string', default: 'auto', choices: ['auto', 'cluener', 'bmes', 'bio', 'weibo'], description: 'auto: .jsonl/.json CLUENER, .bmes BMES, .bio BIO' },
  { key: 'data.max_length', type: 'integer', default: 64, min: 3, description: 'tokens per text, [CLS] and [SEP] included (longer texts are cut)' },
  ...model({ hidden: 128, layers: 2, heads: 4, intermediate: 512 }),
  { key: 'head.kind', type: 'string', default: 'egp', choices: ['egp', 'gp'], description: 'Efficient GlobalPointer or GlobalPointer' },
  { key: 'head.size', type: 'integer', default: 64, min: 2, description: 'GlobalPointer head size d (even)' },
  ...optim('constant'),
  ...train({ batch: 32, epochs: 10, log: 20 }),
  ...precision,
  device,
  { key: 'init', type: 'string', default: '', description: "a run directory (ner or mlm) whose best checkpoint's encoder starts this run ('' = from scratch)" },
];

/** `kexue train mlm`. */
export const MLM_KEYS: readonly KeySpec[] = [
  { key: 'data.train', type: 'string', default: demo('cluener/train.jsonl'), description: 'texts: plain text (one a line) or the texts of a CLUENER file' },
  { key: 'data.dev', type: 'string', default: demo('cluener/dev.jsonl'), description: "held-out texts for the masked-LM loss and accuracy ('' = none)" },
  { key: 'data.format', type: 'string', default: 'auto', choices: ['auto', 'text', 'cluener'], description: 'auto: .jsonl/.json CLUENER texts, else plain text' },
  { key: 'data.max_length', type: 'integer', default: 64, min: 3, description: 'tokens per text, special tokens included' },
  { key: 'data.mask_prob', type: 'number', default: 0.15, min: 0.01, max: 1, description: 'share of tokens chosen for the loss (80% [MASK], 10% random, 10% kept)' },
  ...model({ hidden: 128, layers: 2, heads: 4, intermediate: 512 }),
  ...optim('constant'),
  ...train({ batch: 32, epochs: 10, log: 20 }),
  ...precision,
  device,
];

export const TASK_KEYS: Readonly<Record<string, readonly KeySpec[]>> = { ner: NER_KEYS, mlm: MLM_KEYS };
