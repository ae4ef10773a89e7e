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

  it('nothing predicted: precision 0 and F1 0 (not 1); nothing at all: 0 everywhere, never NaN', () => {
    const m = new EntityF1();
    m.update([], [{ start: 0, end: 1, type: 'X' }]);
    expect(m.result()).toEqual({ precision: 0, recall: 0, f1: 0, correct: 0, predicted: 0, gold: 1 });
    expect(new EntityF1().result()).toEqual({ precision: 0, recall: 0, f1: 0, correct: 0, predicted: 0, gold: 0 });
    expect(new EntityF1(['X']).perType()).toEqual({ X: { precision: 0, recall: 0, f1: 0, correct: 0, predicted: 0, gold: 0 } });
  });

  it('results are exact: 0 when nothing is correct (no epsilon leaks, e.g. 1e-10 / 1137 = 8.8e-14), correct / predicted otherwise', () => {
    const m = new EntityF1();
    const gold = Array.from({ length: 1137 }, (_, i) => ({ start: i, end: i + 1, type: 'X' }));
    m.update([{ start: 0, end: 2, type: 'X' }], gold);
    const r = m.result();
    expect([r.precision, r.recall, r.f1]).toEqual([0, 0, 0]);
    m.update([{ start: 5, end: 6, type: 'X' }, { start: 6, end: 7, type: 'X' }], [{ start: 5, end: 6, type: 'X' }]);
    const s = m.result();
    expect(s).toEqual({ precision: 1 / 3, recall: 1 / 1138, f1: 2 / (3 + 1138), correct: 1, predicted: 3, gold: 1138 });
  });

  it('a type with no gold entity has recall 0 (not 1), gold 0 shown; every label of the model has a row', () => {
    const m = new EntityF1(['LOC', 'ORG', 'PER']);
    m.update([{ start: 0, end: 2, type: 'LOC' }, { start: 4, end: 6, type: 'ORG' }], [{ start: 0, end: 2, type: 'LOC' }]);
    const per = m.perType();
    expect(Object.keys(per)).toEqual(['LOC', 'ORG', 'PER']);
    expect(per.ORG).toEqual({ precision: 0, recall: 0, f1: 0, correct: 0, predicted: 1, gold: 0 });
    expect(per.PER).toEqual({ precision: 0, recall: 0, f1: 0, correct: 0, predicted: 0, gold: 0 });
    expect(per.LOC).toEqual({ precision: 1, recall: 1, f1: 1, correct: 1, predicted: 1, gold: 1 });
  });

  it('a gold type unknown to the model is reported, flagged, and its entities count as missed in the overall recall', () => {
    const m = new EntityF1(['LOC']);
    m.update([{ start: 0, end: 2, type: 'LOC' }], [{ start: 0, end: 2, type: 'LOC' }, { start: 3, end: 5, type: 'GAME' }, { start: 6, end: 8, type: 'GAME' }]);
    const per = m.perType();
    expect(Object.keys(per)).toEqual(['GAME', 'LOC']);
    expect(per.GAME).toEqual({ precision: 0, recall: 0, f1: 0, correct: 0, predicted: 0, gold: 2, unknown: true });
    expect(per.LOC!.unknown).toBeUndefined();
    const r = m.result();
    expect([r.correct, r.predicted, r.gold]).toEqual([1, 1, 3]);
    expect(r.recall).toBe(1 / 3);
    // without the model's labels nothing can be flagged
    expect(new EntityF1().perType()).toEqual({});
  });

  it('the training F1 of logits against dense labels', () => {
    const s = kx.tensor([2, -1, -Infinity, 0.5, -3, 1], [1, 6]);
    const y = kx.tensor([1, 0, 1, 0, 0, 1], [1, 6]);
    // predicted {0, 3, 5}, gold {0, 2, 5}: 2·2 / (3 + 3)
    expect(globalPointerF1(s, y)).toBeCloseTo(4 / 6, 8);
    kx.dispose([s, y]);
  });
});
