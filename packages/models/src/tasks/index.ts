/** Training tasks (NER, masked-LM pretraining, summarization, PEGASUS pre-training) over the task contract of task.ts and the run machinery of ../train. */
export * from './config.js';
export * from './sections.js';
export * from './task.js';
export * from './demo.js';
export * from './ner.js';
export * from './mlm.js';
export * from './summarize.js';
export * from './pegasus.js';
export * from './vae.js';
export * from './registry.js';
