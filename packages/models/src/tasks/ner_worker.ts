/**
 * NerPredictor.predictAsync's worker side (worker/entry.ts imports this module in the worker
 * thread): the predictor rebuilt from the main thread's copies of its config, vocabulary and
 * weights, answering predict calls.
 */
import { NerPredictor, type NerWorkerInit } from './ner.js';

export function nerPredictorService(init: NerWorkerInit) {
  const predictor = NerPredictor.fromWorkerInit(init);
  return {
    predict: (texts: string[], batchSize: number, threshold: number) => predictor.predict(texts, batchSize, threshold),
    dispose: () => predictor.dispose(),
  };
}
