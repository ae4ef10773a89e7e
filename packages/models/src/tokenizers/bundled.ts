/** The vocabularies that ship with @kexue/models (packages/models/vocab/), found next to this module. */
import { fileURLToPath } from 'node:url';

const vocab = (name: string) => fileURLToPath(new URL(`../../vocab/${name}/vocab.txt`, import.meta.url));

export const BUNDLED_VOCABS = {
  /** Google's bert-base-chinese (21,128 tokens; lowercased WordPiece). */
  bertBaseChinese: vocab('bert-base-chinese'),
  /** T5 PEGASUS base (50,000 tokens; jieba words first). */
  t5PegasusBase: vocab('t5_pegasus_base'),
} as const;
