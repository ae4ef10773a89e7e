import { describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { randomTensor } from './helpers.js';

describe('memory under a training loop', () => {
  it('10,000 forward+backward steps inside tidy keep live tensors and bytes flat', () => {
    const x = randomTensor([4, 8], 1);
    let w = kx.keep(randomTensor([8, 4], 2));
    const sample = (): { tensors: number; bytes: number } => ({ tensors: kx.memory().tensors, bytes: kx.memory().bytes });
    let after100 = sample();
    for (let step = 0; step < 10_000; step++) {
      const next = kx.tidy(() => {
        const { grads } = kx.valueAndGrad(([p]) => kx.mean(kx.tanh(kx.matmul(x, p!))), [w]);
        return kx.sub(w, kx.mul(grads[0]!, 0.1));
      });
      w.dispose();
      w = kx.keep(next);
      if (step === 99) after100 = sample();
    }
    expect(sample()).toEqual(after100);
    kx.dispose([x, w]);
  });
});
