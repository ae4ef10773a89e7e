import { afterAll, describe, expect, it } from 'vitest';

import * as kx from '@kexue/core-cuda';
import { AdamW, Lion, SGD, type Optimizer } from '@kexue/optimizers';

import { copy, loadFixture, maxRelError, stepSlice, type OptimCase } from './helpers.js';

const fx = loadFixture('optimizers');
afterAll(() => fx.dispose());

function make(c: OptimCase): Optimizer {
  if (c.optimizer === 'lion') return new Lion(c.options);
  if (c.optimizer === 'adamw') return new AdamW(c.options);
  return new SGD(c.options);
}

/** Runs a fixture case for its 20 steps; the worst max-rel error per reference role, over steps and parameters. */
function runCase(c: OptimCase, roles: string[]): Record<string, number> {
  const names = Object.keys(c.params);
  const params = Object.fromEntries(names.map((n) => [n, copy(fx.get(`${c.name}.init.${n}`))]));
  const opt = make(c);
  const worst: Record<string, number> = Object.fromEntries(roles.map((r) => [r, 0]));
  for (let t = 0; t < c.steps; t++) {
    const grads = Object.fromEntries(names.map((n) => [n, stepSlice(fx.get(`${c.name}.grad.${n}`), t)]));
    opt.step(params, grads);
    kx.dispose(grads);
    const state = roles.includes('m') ? opt.state() : null;
    for (const n of names) {
      for (const role of roles) {
        const actual = role === 'm' ? state!.tensors[`${n}.m`]! : params[n]!;
        const expected = stepSlice(fx.get(`${c.name}.${role}.${n}`), t);
        worst[role] = Math.max(worst[role]!, maxRelError(actual, expected));
        expected.dispose();
      }
    }
    if (state) kx.dispose(state.tensors);
  }
  kx.dispose(params);
  opt.dispose();
  return worst;
}

describe('Lion vs the float64 reference of tools/golden (20 steps)', () => {
  for (const c of fx.cases.filter((c) => c.optimizer === 'lion')) {
    it(`${c.name}: ${JSON.stringify(c.options)}`, () => {
      const worst = runCase(c, ['theta', 'm']);
      console.log(`${c.name}: worst max-rel error: theta ${worst.theta!.toExponential(2)}, m ${worst.m!.toExponential(2)}`);
      expect(worst.theta).toBeLessThanOrEqual(1e-6);
      expect(worst.m).toBeLessThanOrEqual(1e-6);
    });
  }
});

describe('AdamW and SGD vs torch.optim (20 steps)', () => {
  for (const c of fx.cases.filter((c) => c.optimizer === 'adamw' || c.optimizer === 'sgd')) {
    it(`${c.name}: ${JSON.stringify(c.options)}`, () => {
      // theta: torch.optim in float64 on the same float32 inputs; theta32: torch.optim in float32.
      const worst = runCase(c, ['theta', 'theta32']);
      console.log(`${c.name}: worst max-rel error vs torch float64 ${worst.theta!.toExponential(2)}, vs torch float32 ${worst.theta32!.toExponential(2)}`);
      expect(worst.theta).toBeLessThanOrEqual(1e-6);
      expect(worst.theta32).toBeLessThanOrEqual(1e-6);
    });
  }
});
