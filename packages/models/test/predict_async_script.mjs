// NerPredictor.predictAsync in a fresh process, as a program runs it (predict_async.test.ts).
// node predict_async_script.mjs RUN_DIR MODE, MODE being
//   register: tsx's loader and the 'source' condition registered in this process, as kexue's CLI
//             does in a checkout (bin/kexue.js), so the worker thread inherits no flag for them;
//   plain:    whatever the process was started with (tsx's CLI with --conditions=source, or nothing:
//             the packages' dist/).
// Prints {same, entities, models}: whether two concurrent predictAsync calls gave predict()'s
// entities, how many there were, and which file @kexue/models resolved to.
import { register } from 'node:module';

const [runDir, mode] = process.argv.slice(2);
if (mode === 'register') {
  const tsx = await import('tsx/esm/api');
  tsx.register();
  register('data:text/javascript,export async function resolve(s, c, next) { return next(s, { ...c, conditions: [...c.conditions, "source"] }); }');
}
const { NerPredictor } = await import('@kexue/models');
const predictor = NerPredictor.load(runDir, 'last');
const texts = ['浙商银行企业信贷部叶老桂博士', '北京大学的学生在上海工作', '张三去了腾讯公司', '彭小军认为，国内银行现在走的是台湾的发卡模式'];
const requests = [texts.slice(0, 1), texts.slice(1)];
const answers = await Promise.all(requests.map((r) => predictor.predictAsync(r, 32, 2)));
const sync = requests.map((r) => predictor.predict(r, 32, 2));
const same = JSON.stringify(answers) === JSON.stringify(sync);
console.log(JSON.stringify({ same, entities: sync.flat(2).length, models: import.meta.resolve('@kexue/models') }));
predictor.dispose(); // stops the worker too: the process then exits by itself
