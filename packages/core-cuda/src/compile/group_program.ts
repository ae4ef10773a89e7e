/**
 * A fused group as a group program (FUSION.md §4; native/ops/fused_group/plan.h): instructions
 * (op, dst, a, b, c, imm) over registers of float32 elements. Code is first made in SSA form (a
 * register per value), then multiply-adds are contracted (a product read only by an add or a
 * subtraction becomes one fused instruction), then registers are allocated so that a block needs
 * few of them. A group with a reduction is its prologue, one reduce instruction, then its epilogue,
 * which loads its own operands (it runs over the reduction's shape).
 */
import { ArgumentError } from '../errors.js';
import type { Attrs } from '../tape.js';
import type { TraceNode } from './graph.js';
import type { FusionGroup } from './fusion.js';

/** The instruction set of plan.h, in its order. */
export const GROUP_OPS = ['load', 'imm', 'add', 'sub', 'mul', 'div', 'muladd', 'mulsub', 'negmuladd', 'where', 'unary', 'unary_grad', 'reduce'] as const;
type GroupOpName = (typeof GROUP_OPS)[number];

/** ops/elementwise/math.h's UnaryFn, in its order. */
const UNARY_FNS = ['neg', 'exp', 'log', 'sqrt', 'rsqrt', 'tanh', 'sigmoid', 'relu', 'silu', 'gelu', 'gelu_tanh', 'pow'] as const;

interface Instr {
  op: GroupOpName;
  dst: number;
  /** Registers; -1 in a or b reads the immediate. */
  a: number;
  b: number;
  c: number;
  imm: number;
  fn: number;
}

export interface GroupCode {
  /** Six integers per instruction, as plan.h reads them. */
  code: number[];
  /** The register of each of the group's outputs (FusionGroup.outputs). */
  outputs: number[];
  registers: number;
  /** One line per instruction, for KX_DUMP. */
  text: string[];
}

/** An operand: a register, or an immediate value. */
type Operand = { reg: number } | { imm: number };

function unaryFn(attrs: Attrs): number {
  const name = attrs.fn === 'gelu' && attrs.approximate === 'tanh' ? 'gelu_tanh' : String(attrs.fn);
  const fn = UNARY_FNS.indexOf(name as (typeof UNARY_FNS)[number]);
  if (fn < 0) throw new ArgumentError(`kx.compile: unknown unary function '${name}'`);
  return fn;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function floatBits(x: number): number {
  f32[0] = x;
  return u32[0]!;
}

/** Compiles a group; `nodes` maps node ids to the trace's nodes. */
export function compileGroup(group: FusionGroup, nodes: ReadonlyMap<number, TraceNode>): GroupCode {
  const code: Instr[] = [];
  let nextReg = 0;
  const emit = (op: GroupOpName, fields: Partial<Omit<Instr, 'op' | 'dst'>> = {}): number => {
    const dst = nextReg++;
    code.push({ op, dst, a: -1, b: -1, c: -1, imm: 0, fn: 0, ...fields });
    return dst;
  };
  // The operands of the part being emitted (the epilogue starts afresh: it cannot read the
  // prologue's registers), and every member's value as emitted, for the output table.
  let operands = new Map<number, Operand>();
  const made = new Map<number, Operand>();
  const operand = (v: number): Operand => {
    let o = operands.get(v);
    if (!o) {
      const value = group.imms.get(v);
      o = value !== undefined ? { imm: value } : { reg: emit('load', { a: group.inputs.indexOf(v) }) };
      operands.set(v, o);
    }
    return o;
  };
  const reg = (v: number): number => {
    const o = operand(v);
    return 'reg' in o ? o.reg : emit('imm', { imm: o.imm });
  };
  const reduceNode = group.reduce?.node;
  const epilogue = new Set(group.epilogue);
  const order = [...group.nodes.filter((id) => id !== reduceNode && !epilogue.has(id)), ...(reduceNode === undefined ? [] : [reduceNode]), ...group.epilogue];
  for (const id of order) {
    const n = nodes.get(id)!;
    const [x, y, z] = n.inputs as number[];
    let out: Operand;
    switch (n.op) {
      case 'add':
      case 'sub':
      case 'mul':
      case 'div': {
        const a = operand(x!);
        const b = 'imm' in a ? { reg: reg(y!) } : operand(y!);
        out = { reg: emit(n.op, { a: 'reg' in a ? a.reg : -1, b: 'reg' in b ? b.reg : -1, imm: 'imm' in a ? a.imm : 'imm' in b ? b.imm : 0 }) };
        break;
      }
      case 'unary':
        out = { reg: emit('unary', { a: reg(x!), fn: unaryFn(n.attrs), imm: Number(n.attrs.exponent ?? 1) }) };
        break;
      case 'unary_backward':
        out = { reg: emit('unary_grad', { a: reg(x!), b: reg(y!), c: reg(z!), fn: unaryFn(n.attrs), imm: Number(n.attrs.exponent ?? 1) }) };
        break;
      case 'where':
        out = { reg: emit('where', { a: reg(x!), b: reg(y!), c: reg(z!) }) };
        break;
      case 'broadcast_to':
        out = operand(x!); // an index map, not an instruction: its input is read through the group's
        break;
      case 'sum':
      case 'mean':
      case 'max':
        out = { reg: emit('reduce', { a: reg(x!) }) };
        operands = new Map();
        break;
      default:
        throw new ArgumentError(`kx.compile: '${n.op}' cannot be in a fused group`);
    }
    operands.set(n.outputs[0]!, out);
    made.set(n.outputs[0]!, out);
  }
  const outputs = group.outputs.map((v) => {
    const o = made.get(v)!;
    return 'reg' in o ? o.reg : emit('imm', { imm: o.imm });
  });
  const fused = contractMultiplyAdds(code, outputs);
  return allocate(fused, outputs);
}

/** The registers an instruction reads. */
function reads(ins: Instr): number[] {
  switch (ins.op) {
    case 'load':
    case 'imm':
      return [];
    case 'unary':
      return [ins.a];
    default:
      return [ins.a, ins.b, ins.c].filter((r) => r >= 0);
  }
}

/** a·b ± c for a product read only by one add or subtraction (SSA code; `outputs` are read at the end). */
function contractMultiplyAdds(code: Instr[], outputs: readonly number[]): Instr[] {
  const def = new Map(code.map((ins, i) => [ins.dst, i]));
  const uses = new Map<number, number>();
  for (const r of outputs) uses.set(r, (uses.get(r) ?? 0) + 1);
  for (const ins of code) for (const r of reads(ins)) uses.set(r, (uses.get(r) ?? 0) + 1);
  const removed = new Set<number>();
  // The product's registers with the immediate, if any, second (a product of two registers or of a
  // register and an immediate), when r is such a product read once.
  const product = (r: number): { a: number; b: number; imm: number; at: number } | undefined => {
    const at = def.get(r);
    if (at === undefined || uses.get(r) !== 1) return undefined;
    const m = code[at]!;
    if (m.op !== 'mul') return undefined;
    return m.a >= 0 ? { a: m.a, b: m.b, imm: m.imm, at } : { a: m.b, b: -1, imm: m.imm, at };
  };
  code.forEach((ins, i) => {
    if ((ins.op !== 'add' && ins.op !== 'sub') || ins.a < 0 || ins.b < 0) return;
    const left = product(ins.a);
    const right = left ? undefined : product(ins.b);
    const p = left ?? right;
    if (!p) return;
    const op: GroupOpName = left ? (ins.op === 'add' ? 'muladd' : 'mulsub') : ins.op === 'add' ? 'muladd' : 'negmuladd';
    code[i] = { op, dst: ins.dst, a: p.a, b: p.b, c: left ? ins.b : ins.a, imm: p.imm, fn: 0 };
    removed.add(p.at);
  });
  return code.filter((_, i) => !removed.has(i));
}

/**
 * Registers by linear scan: an instruction's destination is taken before its dead operands are
 * freed, so it never overlaps an operand (the unary runs must not write over their input); the
 * outputs' registers are never reused (the interpreter stores an output at its register's last write).
 */
function allocate(code: Instr[], outputs: readonly number[]): GroupCode {
  const kept = new Set(outputs);
  const lastRead = new Map<number, number>();
  code.forEach((ins, i) => {
    for (const r of reads(ins)) lastRead.set(r, i);
  });
  const free: number[] = [];
  let registers = 0;
  const physical = new Map<number, number>();
  const take = (): number => (free.length > 0 ? free.sort((a, b) => b - a).pop()! : registers++);
  const out: number[] = [];
  const text: string[] = [];
  code.forEach((ins, i) => {
    const [a, b, c] = [ins.a, ins.b, ins.c].map((r) => (r >= 0 ? physical.get(r)! : -1)) as [number, number, number];
    const dst = take();
    physical.set(ins.dst, dst);
    for (const r of new Set(reads(ins))) if (lastRead.get(r) === i && !kept.has(r)) free.push(physical.get(r)!);
    if (!kept.has(ins.dst) && !lastRead.has(ins.dst)) free.push(dst); // a value nothing reads
    const fields = ins.op === 'load' ? [ins.a, -1, -1] : [a, b, c];
    out.push(GROUP_OPS.indexOf(ins.op) | (ins.fn << 8), dst, ...fields, floatBits(ins.imm));
    text.push(disassemble(ins, dst, fields as [number, number, number]));
  });
  return { code: out, outputs: outputs.map((r) => physical.get(r)!), registers, text };
}

function disassemble(ins: Instr, dst: number, [a, b, c]: [number, number, number]): string {
  const r = (x: number) => (x >= 0 ? `r${x}` : String(Math.fround(ins.imm)));
  switch (ins.op) {
    case 'load':
      return `r${dst} = load in${a}`;
    case 'imm':
      return `r${dst} = ${Math.fround(ins.imm)}`;
    case 'unary':
      return `r${dst} = ${UNARY_FNS[ins.fn]}(r${a}${UNARY_FNS[ins.fn] === 'pow' ? `, ${ins.imm}` : ''})`;
    case 'unary_grad':
      return `r${dst} = r${c} * ${UNARY_FNS[ins.fn]}'(r${a}, r${b})`;
    case 'where':
      return `r${dst} = r${a} ? r${b} : r${c}`;
    case 'reduce':
      return `r${dst} = reduce r${a}`;
    case 'muladd':
      return `r${dst} = ${r(a)} * ${r(b)} + r${c}`;
    case 'mulsub':
      return `r${dst} = ${r(a)} * ${r(b)} - r${c}`;
    case 'negmuladd':
      return `r${dst} = r${c} - ${r(a)} * ${r(b)}`;
    default:
      return `r${dst} = ${ins.op} ${r(a)}, ${r(b)}`;
  }
}
