/** The shape of bench/results.json, and its PyTorch fields from each setting's time. */
import type { CaseLoad } from './blocks.js';
import type { Peaks } from './peaks.js';
import type { TorchSettingName } from './torch.js';

/** The sides a case can time; torch runs once per setting (torch.ts). */
export type SideKey = 'kexue' | 'ort' | `torch_${TorchSettingName}`;

/**
 * Each PyTorch setting's median ms and samples: torch_passive_ms, torch_default_ms (as in older
 * results) and, where the environment overrides OpenBLAS's kernels, torch_passive_openblas_auto_ms
 * and torch_default_openblas_auto_ms (those overrides removed).
 */
type TorchSettingFields = { [S in TorchSettingName as `torch_${S}_ms`]?: number | null } & {
  [S in TorchSettingName as `torch_${S}_samples`]?: number[];
};

/** One fresh-process load of a BERT inference side (the bert-*-load cases), medians over the runs. */
export interface FootprintResult {
  /** From nothing (library imported) to a model ready to run, ms. */
  load_ms: number;
  load_samples: number[];
  /** Resident set before the model, bytes: the runtime and library alone. */
  base_rss_bytes: number;
  /** VmHWM after loading and running every inference point once, bytes. */
  peak_rss_bytes: number;
}

/** The idle-neighbour case: the neighbour's time per unit of work beside each idler. */
export interface NeighbourResult {
  /** What the idlers do, in words. */
  pattern: string;
  /** Busy threads of the neighbour (one per core). */
  workers: number;
  /** Median ms per unit with no idler. */
  alone_ms: number;
  idlers: Partial<Record<'kexue' | `torch_${TorchSettingName}`, {
    /** Median ms per unit beside this idler. */
    ms: number;
    /** ms / alone_ms − 1: what the idler cost the neighbour (0.25 = 25% slower). */
    slowdown: number;
    /** Cores the idler used on average over a phase (its products and its idle gaps). */
    idler_cores: number;
    /** Share of a phase the idler spent in its products (the rest was meant to be idle). */
    product_share: number;
  }>>;
}

export interface CaseResult extends TorchSettingFields {
  case: string;
  what: string;
  /** Median per-iteration ms (load cases: load time; idle-neighbour: the neighbour's ms per unit). */
  kexue_ms: number | null;
  /** The fastest of the PyTorch settings (torch_setting says which). */
  torch_ms: number | null;
  torch_setting?: TorchSettingName;
  /** ONNX Runtime, for the cases that have it. */
  ort_ms?: number | null;
  /** kexue_ms / torch_ms: below 1 kexue is faster. */
  ratio: number | null;
  /** kexue_ms / ort_ms. */
  ratio_ort?: number | null;
  kexue_samples: number[];
  ort_samples?: number[];
  flops?: number;
  bytes?: number;
  kexue_gflops?: number;
  torch_gflops?: number;
  ort_gflops?: number;
  /** kexue GFLOP/s over the measured oneDNN matmul peak (the engine of kexue's products). */
  kexue_of_onednn_peak?: number;
  kexue_gbs?: number;
  torch_gbs?: number;
  /** kexue GB/s over the measured memory-copy bandwidth. */
  kexue_of_copy_peak?: number;
  /** kexue's last hidden state against ONNX Runtime's on the case's input, max |difference|. */
  max_abs_diff_vs_ort?: number;
  /** PyTorch's output against kexue's on the case's input, max |difference| over the settings (the cases that hand theirs over). */
  max_abs_diff_vs_torch?: number;
  /** What one iteration costs besides time, where the case counts it (train steps: native_calls, kernels, fused_groups). */
  counts?: Record<string, number>;
  /** What other processes used during the kept blocks; null where /proc was not read. */
  load: CaseLoad | null;
  /** True when some kept block was still taken under load after its retries: not a clean number. */
  loaded: boolean;
  footprint?: Partial<Record<'kexue' | 'ort' | 'torch', FootprintResult>>;
  neighbour?: NeighbourResult;
  error?: string;
}

/** The machine as the report header shows it. */
export interface MachineInfo {
  /** The widest x86 vector extension in /proc/cpuinfo's flags ('avx512f', 'avx2', ...). */
  isa: string;
  /** The addon's SIMD as buildInfo().simd reports it (the Highway target chosen at load, where the addon has runtime dispatch). */
  addonSimd: string;
  /** os.loadavg() at the start and at the end of the run. */
  loadavgStart: number[];
  loadavgEnd?: number[];
  /** Busy cores over one second before any case ran (every process; the benchmark idle). */
  busyCoresAtStart: number | null;
  cpus: number;
}

export interface BenchReport {
  date: string;
  threads: number;
  node: string;
  torch: string | null;
  /** Why PyTorch did not run, when it did not. */
  torchError?: string;
  /** The PyTorch settings that ran, in order (older results: passive and default). */
  torchSettings?: TorchSettingName[];
  /** onnxruntime-node's version, or null when it could not be loaded (ortError says why). */
  ort: string | null;
  ortError?: string;
  cpu: string;
  machine: MachineInfo;
  blas: string;
  openblasEnv: Record<string, string>;
  peaks: Peaks | null;
  /** The same peaks with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed (they concern OpenBLAS only). */
  peaksWithoutOpenblasOverrides: Peaks | null;
  peaksError?: string;
  results: CaseResult[];
}

/** A case's PyTorch fields: torch_<setting>_ms of each, and torch_ms / torch_setting of the fastest. */
export type TorchFields = Pick<CaseResult, 'torch_ms' | 'torch_setting'> & TorchSettingFields;

/** The PyTorch fields from each setting's ms (null: no time); of equal times the earlier setting wins. */
export function torchFields(ms: ReadonlyMap<TorchSettingName, number | null>): TorchFields {
  const fields: TorchFields = { torch_ms: null };
  for (const [setting, t] of ms) {
    fields[`torch_${setting}_ms`] = t;
    if (t !== null && (fields.torch_ms === null || t < fields.torch_ms)) {
      fields.torch_ms = t;
      fields.torch_setting = setting;
    }
  }
  return fields;
}
