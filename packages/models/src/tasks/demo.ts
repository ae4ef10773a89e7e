/**
 * The demo data that ships with this package (packages/models/demo/): the CLUENER sample that
 * `kexue train ner` and `kexue train mlm` use when no data is given. Found next to this module, so
 * it resolves the same in a checkout (src/) and in an installed package (dist/).
 */
import { fileURLToPath } from 'node:url';

/** The absolute path of a file of the shipped demo data, e.g. demoFile('cluener/train.jsonl'). */
export function demoFile(name: string): string {
  return fileURLToPath(new URL(`../../demo/${name}`, import.meta.url));
}
