/** The plan as text: what `KX_DUMP=1` prints to stderr when a signature is traced. */
import type { Value } from './graph.js';
import type { CompiledPlan } from './plan.js';

function describeValue(v: Value): string {
  switch (v.origin) {
    case 'arg':
      return `arg${v.index}`;
    case 'capture':
      return `cap${v.index}`;
    case 'const':
      return `const${v.index}`;
    case 'node':
      return v.output === 0 ? `n${v.index}` : `n${v.index}.${v.output}`;
  }
}

function fmtValue(v: Value): string {
  return `${v.dtype}[${v.shape.join(',')}]`;
}

/** The plan's nodes (kind, inputs, output, group), then each group's program. */
export function formatPlan(plan: CompiledPlan, title: string): string {
  const groupOf = new Map<number, number>();
  plan.groups.forEach((g, i) => g.nodes.forEach((id) => groupOf.set(id, i)));
  const lines = [
    `kx.compile ${title}: ${plan.tracedOps} ops traced, ${plan.nodes.length} live, ${plan.groups.length} fused group(s), ` +
      `${plan.steps} native steps in ${plan.nativeCallsPerReplay} addon call per replay`,
  ];
  for (const n of plan.nodes) {
    const ins = n.inputs.map((v) => (v === null ? '-' : describeValue(plan.values[v]!))).join(', ');
    const outs = n.outputs.map((v) => fmtValue(plan.values[v]!)).join(', ');
    const attrs = Object.entries(n.attrs).filter(([, v]) => v !== undefined);
    const g = groupOf.get(n.id);
    lines.push(
      `  n${n.id} = ${n.op}(${ins})${attrs.length ? ` {${attrs.map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join(', ')}}` : ''}` +
        ` -> ${outs}  [${n.kind}${n.inPlace ? ', in place' : ''}${g !== undefined ? `, group ${g}` : ''}]`,
    );
  }
  plan.groups.forEach((g, i) => {
    const inputs = g.inputs.map((v, k) => `in${k}=${describeValue(plan.values[v]!)}`).join(' ');
    const imms = [...g.imms].map(([v, x]) => `${describeValue(plan.values[v]!)}=${x}`).join(' ');
    const reduce = g.reduce ? `, ${g.reduce.op} of rows of ${g.reduce.rows} to [${g.reduce.shape.join(',')}] (epilogue ${g.epilogue.map((id) => `n${id}`).join(' ') || 'none'})` : '';
    lines.push(
      `  group ${i}: ${g.nodes.map((id) => `n${id}`).join(' ')} over ${g.dtype}[${g.shape.join(',')}]${reduce}, ${g.program.registers} registers; ` +
        `${inputs}${imms ? `; imm ${imms}` : ''}`,
    );
    for (const t of g.program.text) lines.push(`    ${t}`);
    g.outputs.forEach((v, k) => lines.push(`    out${k} = r${g.program.outputs[k]} (${describeValue(plan.values[v]!)})`));
  });
  return lines.join('\n') + '\n';
}
