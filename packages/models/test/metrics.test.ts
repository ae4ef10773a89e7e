import { describe, expect, it } from 'vitest';

import * as kx from '@kexue/core-cuda';
import { EntityF1, globalPointerF1 } from '@kexue/models';

describe('entity-level P/R/F1 (§2.7)', () => {
  it('counts exact (start, end, type) matches over a dataset', () => {
    const m = new EntityF1();
    m.update(
      [{ start: 0, end: 2, type: 'LOC' }, { start: 3, end: 5, type: 'PER' }, { start: 3, end: 5, type: 'PER' }],
      [{ start: 0, end: 2, type: 'LOC' }, { start: 3, end: 6, type: 'PER' }],
    );
    m.update([], [{ start: 1, end: 2, type: 'ORG' }]);
    const r = m.result();
    // X = 1, Y = 2 (the duplicate counts once), Z = 3
    expect(r.correct).toBe(1);
    expect(r.predicted).toBe(2);
    expect(r.gold).toBe(3);
    expect(r.precision).toBeCloseTo(0.5, 8);
    expect(r.recall).toBeCloseTo(1 / 3, 8);
    expect(r.f1).toBeCloseTo(2 / 5, 8);
    const per = m.perType();
    expect(Object.keys(per)).toEqual(['LOC', 'ORG', 'PER']);
    expect(per.LOC!.f1).toBeCloseTo(1, 8);
    expect(per.ORG!.recall).toBeCloseTo(0, 8);
    expect(per.PER!.precision).toBeCloseTo(0, 8);
  });

  it('counts start at 1e-10 as the reference: nothing predicted and nothing gold is F1 = 1, never NaN', () => {
    const r = new EntityF1().result();
    expect([r.precision, r.recall, r.f1]).toEqual([1, 1, 1]);
    const m = new EntityF1();
    m.update([], [{ start: 0, end: 1, type: 'X' }]);
    expect(m.result().f1).toBeCloseTo(0, 8);
  });

  it('the training F1 of logits against dense labels', () => {
    const s = kx.tensor([2, -1, -Infinity, 0.5, -3, 1], [1, 6]);
    const y = kx.tensor([1, 0, 1, 0, 0, 1], [1, 6]);
    // predicted {0, 3, 5}, gold {0, 2, 5}: 2·2 / (3 + 3)
    expect(globalPointerF1(s, y)).toBeCloseTo(4 / 6, 8);
    kx.dispose([s, y]);
  });
});
