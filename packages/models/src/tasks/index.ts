/** Training tasks: NER (GlobalPointer heads) and masked-LM pretraining, over the run machinery of ../train. */
export * from './common.js';
export * from './ner.js';
export * from './mlm.js';
