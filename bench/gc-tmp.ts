import { findCase } from '@kexue/bench';
const c = findCase(process.argv[2]!)!;
const inst = await c.setup();
for (let i = 0; i < 2; i++) inst.run();
const ts: number[] = [];
const cpu0 = process.cpuUsage();
for (let i = 0; i < 6; i++) { const t0 = performance.now(); inst.run(); ts.push(performance.now() - t0); }
const cpu = process.cpuUsage(cpu0);
ts.sort((a, b) => a - b);
console.log(`${process.env.KX_TMP_NOEXT ? 'no external' : 'external   '}: median ${((ts[2]! + ts[3]!) / 2).toFixed(0)} ms, process CPU per step ${((cpu.user + cpu.system) / 6 / 1000).toFixed(0)} ms`);
