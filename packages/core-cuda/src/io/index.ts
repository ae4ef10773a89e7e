/** File formats: safetensors. */
export { loadSafetensors, saveSafetensors, parseSafetensors, serializeSafetensors, type SafetensorsFile } from './safetensors.js';
