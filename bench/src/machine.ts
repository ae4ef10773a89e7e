/** The machine a report was taken on: its vector ISA, the addon's SIMD target, its load. */
import { readFileSync } from 'node:fs';
import os from 'node:os';

import type { buildInfo } from '@kexue/core-cuda';

import { busyCores } from './blocks.js';
import { procAvailable } from './proc.js';
import type { MachineInfo } from './result.js';

type NativeBuildInfo = ReturnType<typeof buildInfo>;

/** x86 vector extensions, widest first. */
const ISA_FLAGS = ['avx512f', 'avx2', 'avx', 'sse4_2'] as const;

/** The widest extension among /proc/cpuinfo's flags (of its first processor), or 'unknown'. */
export function isaFromCpuinfo(cpuinfo: string): string {
  const line = cpuinfo.split('\n').find((l) => /^flags\s*:/.test(l));
  if (!line) return 'unknown';
  const flags = new Set(line.slice(line.indexOf(':') + 1).trim().split(/\s+/));
  return ISA_FLAGS.find((f) => flags.has(f)) ?? 'unknown';
}

/** The machine now: ISA, the addon's SIMD, load averages and one second of busy cores. */
export async function machineInfo(info: NativeBuildInfo): Promise<MachineInfo> {
  let isa = 'unknown';
  try {
    isa = isaFromCpuinfo(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    // not Linux: the ISA stays unknown
  }
  const cpus = os.availableParallelism();
  return {
    isa,
    addonSimd: info.simd,
    loadavgStart: os.loadavg(),
    busyCoresAtStart: procAvailable() ? await busyCores(1000, cpus) : null,
    cpus,
  };
}
