/**
 * Model parity against PyTorch on CUDA (the suites are in model_parity.ts): the same fixtures and
 * bounds as on the CPU. scripts/gpu-check.sh runs every *.cuda.test.ts; without a GPU the suites
 * are skipped with the reason.
 */
import { describe, it } from 'vitest';

import * as kx from '@kexue/core-cuda';

import { describeModelParity } from './model_parity.js';

if (kx.cuda.isAvailable()) describeModelParity('cuda');
else describe('model parity on CUDA', () => it.skip(`skipped: ${kx.cuda.unavailableReason()}`, () => {}));
