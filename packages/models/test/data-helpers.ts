/** Paths shared by the dataset reader tests. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
/** The repository root (packages/models/test → ../../..). */
export const repoRoot = path.resolve(here, '../../..');
/** ../shared/data next to the repository, as on CI. */
export const dataRoot = path.resolve(repoRoot, '../shared/data');
export const fixture = (name: string) => path.join(here, 'fixtures', 'data', name);
export const data = (rel: string) => path.join(dataRoot, rel);
