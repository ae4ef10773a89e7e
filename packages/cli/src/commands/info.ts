/** `kexue info`: what this build of the core can do, and the devices it sees. */
import type { Command } from '../framework/command.js';

function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
}

export const info: Command = {
  name: 'info',
  summary: 'Print the native build (BLAS, SIMD, CUDA, threads, ops) and the devices.',
  options: [{ name: 'json', type: 'boolean', description: 'print JSON: {version, node, build, devices, cudaUnavailableReason}' }],
  positionals: [],
  async run(args, ctx) {
    const kx = await import('@kexue/core-cuda');
    const build = kx.buildInfo();
    const devices = kx.devices();
    const reason = kx.cuda.unavailableReason();
    const version = (await import('../version.js')).version;
    if (args.options.json) {
      ctx.stdout(JSON.stringify({ version, node: process.version, build, devices, cudaUnavailableReason: reason }) + '\n');
      return;
    }
    const cpuOps = build.ops.filter((o) => o.cpu).length;
    const cudaOps = build.ops.filter((o) => o.cuda).length;
    const lines = [
      `kexue ${version} (node ${process.version})`,
      `build:    compiler ${build.compiler}; BLAS ${build.blas}; SIMD ${build.simd}${build.f16c ? ' + F16C' : ''}; ${build.threads} CPU threads`,
      `cuda:     ${build.cuda ? `compiled in (archs ${build.cudaArchs || '-'}, runtime ${build.cudaRuntimeVersion})` : 'not compiled in'}`,
      `ops:      ${build.ops.length} (${cpuOps} with a CPU kernel, ${cudaOps} with a CUDA kernel)`,
      'devices:',
      ...devices.map((d) =>
        d.cuda
          ? `  ${d.name}  ${d.cuda.name}, compute ${d.cuda.computeCapability}, ${gib(d.cuda.totalMemory)}, ${d.cuda.multiprocessors} SMs`
          : `  ${d.name}`,
      ),
    ];
    if (reason) lines.push(`CUDA unavailable: ${reason}`);
    ctx.stdout(lines.join('\n') + '\n');
  },
};
