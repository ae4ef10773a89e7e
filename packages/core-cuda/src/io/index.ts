/** File formats: safetensors (read and write) and PyTorch zip checkpoints (read); atomic writes and directory creation. */
export {
  loadSafetensors,
  readSafetensors,
  readSafetensorsHeader,
  saveSafetensors,
  parseSafetensors,
  serializeSafetensors,
  type LoadOptions,
  type SafetensorsLoadOptions,
  type SafetensorsFile,
  type SafetensorsEntry,
  type SafetensorsHeader,
} from './safetensors.js';
export { type FileDType, type NonFiniteElement } from './elements.js';
export { loadTorch, readTorch, type TorchFile } from './torch.js';
export { writeFileAtomic, type ContentWriter } from './atomic.js';
export { makeDirectory } from './directory.js';
