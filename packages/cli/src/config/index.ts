/** Config files and key=value overrides for `kexue train`, typed and validated against each task's keys. */
export { DEVICE_NAME, MLM_KEYS, NER_KEYS, REPO_ROOT, TASK_KEYS, type KeySpec, type KeyType } from './schema.js';
export { checkDeviceOption, convertValue, flatten, parseOverrides, readConfigFile, resolveConfig, unflatten, type FlatConfig } from './resolve.js';
