/** Model parity against PyTorch on the CPU (the suites are in model_parity.ts). */
import { describeModelParity } from './model_parity.js';

describeModelParity('cpu');
