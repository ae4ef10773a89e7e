/**
 * No import cycles inside a package's src: each package's modules form a layered graph (in
 * core-cuda: tensor.ts knows no ops, tensor_methods.ts attaches the Tensor methods that run them,
 * ops/broadcast.ts sits below ops/elementwise.ts and ops/reduce.ts).
 *
 * Every import and re-export counts, dynamic import() included (a lazy import does not make a
 * cycle acceptable), except those marked `type` (`import type`, `export type`, or every name
 * `type`): the compiler erases them, so they take no part in loading, and a module may name the
 * types of a module above it that way (memory.ts and tape.ts name Tensor's). An import not marked
 * `type` counts even where only types are used from it.
 */
import { readdirSync, readFileSync, existsSync, mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const PACKAGES = fileURLToPath(new URL('../../', import.meta.url));
const SOURCE = /\.(ts|mts|cts|tsx)$/;

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...sourceFiles(p));
    else if (SOURCE.test(e.name) && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out.sort();
}

/** The source file a relative specifier names ('./x.js' → x.ts), or null when there is none. */
function resolve(from: string, spec: string): string | null {
  const base = path.resolve(path.dirname(from), spec);
  const stem = base.replace(/\.(m|c)?jsx?$/, '');
  const candidates = [base, `${stem}.ts`, `${stem}.tsx`, `${stem}.mts`, `${stem}.cts`, path.join(base, 'index.ts')];
  return candidates.find((c) => SOURCE.test(c) && existsSync(c)) ?? null;
}

/** The module specifiers of a file's imports, re-exports and import() calls that are not marked `type`. */
function runtimeImports(file: string, text: string): string[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const specs: string[] = [];
  const add = (n: ts.Node | undefined) => {
    if (n && ts.isStringLiteralLike(n)) specs.push(n.text);
  };
  const allTypes = (names: ts.NodeArray<ts.ImportSpecifier | ts.ExportSpecifier>) => names.length > 0 && names.every((e) => e.isTypeOnly);
  for (const st of sf.statements) {
    if (ts.isImportDeclaration(st)) {
      const c = st.importClause;
      if (c?.isTypeOnly || (c && !c.name && c.namedBindings && ts.isNamedImports(c.namedBindings) && allTypes(c.namedBindings.elements))) continue;
      add(st.moduleSpecifier);
    } else if (ts.isExportDeclaration(st)) {
      if (st.isTypeOnly || (st.exportClause && ts.isNamedExports(st.exportClause) && allTypes(st.exportClause.elements))) continue;
      add(st.moduleSpecifier);
    } else if (ts.isImportEqualsDeclaration(st) && !st.isTypeOnly && ts.isExternalModuleReference(st.moduleReference)) {
      add(st.moduleReference.expression);
    }
  }
  const visit = (n: ts.Node): void => {
    if (ts.isCallExpression(n) && n.expression.kind === ts.SyntaxKind.ImportKeyword) add(n.arguments[0]);
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return specs;
}

/** Each file of dir (recursively) → the files of dir it imports. */
function importGraph(dir: string): Map<string, string[]> {
  const files = sourceFiles(dir);
  const inDir = new Set(files);
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const deps: string[] = [];
    for (const spec of runtimeImports(file, readFileSync(file, 'utf8'))) {
      if (!spec.startsWith('.')) continue; // a package or a node: builtin
      const target = resolve(file, spec);
      if (target === null) throw new Error(`${path.relative(dir, file)}: cannot resolve '${spec}'`);
      if (inDir.has(target) && !deps.includes(target)) deps.push(target);
    }
    graph.set(file, deps);
  }
  return graph;
}

/**
 * One cycle per strongly connected component of the graph, as 'a.ts → b.ts → a.ts' (paths
 * relative to root), followed by the component's files when it has more; [] when the graph is
 * acyclic.
 */
function importCycles(graph: Map<string, string[]>, root: string): string[] {
  // Tarjan's strongly connected components.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const c: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        c.push(w);
      } while (w !== v);
      if (c.length > 1 || (graph.get(v) ?? []).includes(v)) components.push(c);
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);

  // A shortest cycle through each component's first file (breadth-first inside the component).
  const name = (f: string) => path.relative(root, f).split(path.sep).join('/');
  return components.map((c) => {
    const members = new Set(c);
    const start = [...c].sort()[0]!;
    const parent = new Map<string, string>();
    const queue = [start];
    for (let i = 0; i < queue.length; i++) {
      const v = queue[i]!;
      const next = (graph.get(v) ?? []).filter((w) => members.has(w));
      if (next.includes(start)) {
        const cycle = [v];
        while (cycle[0] !== start) cycle.unshift(parent.get(cycle[0]!)!);
        const text = [...cycle, start].map(name).join(' → ');
        return cycle.length === c.length ? text : `${text} (one of the cycles among ${c.map(name).sort().join(', ')})`;
      }
      for (const w of next) {
        if (!parent.has(w) && w !== start) {
          parent.set(w, v);
          queue.push(w);
        }
      }
    }
    throw new Error(`no cycle through ${name(start)}`); // unreachable in a strongly connected component
  });
}

describe.each(['core-cuda', 'optimizers', 'models', 'cli'])('packages/%s/src', (pkg) => {
  it('has no import cycles', () => {
    const src = path.join(PACKAGES, pkg, 'src');
    const graph = importGraph(src);
    expect(graph.size).toBeGreaterThan(0);
    expect(importCycles(graph, src)).toEqual([]);
  });
});

/** The cycles importCycles finds among these files (path → text), written to a temporary folder. */
function cyclesOf(files: Record<string, string>): string[] {
  const dir = mkdtempSync(path.join(tmpdir(), 'kx-imports-'));
  try {
    for (const [f, text] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
      writeFileSync(path.join(dir, f), text);
    }
    return importCycles(importGraph(dir), dir).sort();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('the import-cycle check', () => {
  it('finds cycles through imports, re-exports and import(), and skips only imports marked type', () => {
    const cycles = cyclesOf({
      'a.ts': "import { b } from './b.js';\nexport const a = () => b;",
      'b.ts': "export { c as b } from './sub/c.js';",
      'sub/c.ts': "export const c = () => import('../a.js');",
      // d names e's types with imports marked type: no edge d → e, so no cycle
      'd.ts': "import type { E } from './e.js';\nimport { type F } from './e.js';\nexport { type G } from './e.js';\nexport type D = E | F;",
      'e.ts': "import './d.js';\nimport { type D } from './d.js';\nexport interface E { d: D }\nexport type F = 1;\nexport type G = 2;",
      // an import not marked type counts even where only types are used from it
      'g.ts': "import { H } from './h.js';\nexport type G = H;",
      'h.ts': "import { G } from './g.js';\nexport type H = G | 1;",
      'i.ts': "import './i.js';",
    });
    expect(cycles).toEqual(['a.ts → b.ts → sub/c.ts → a.ts', 'g.ts → h.ts → g.ts', 'i.ts → i.ts']);
  });

  it('finds the cycle core-cuda had: tensor.ts → ops/cast.ts → kernel.ts → tensor.ts', () => {
    const cycles = cyclesOf({
      'tensor.ts': "import { cast } from './ops/cast.js';\nexport class Tensor { cast() { return cast(this); } }",
      'kernel.ts': "import { Tensor } from './tensor.js';\nexport const run = () => new Tensor();",
      'ops/cast.ts': "import { run } from '../kernel.js';\nimport type { Tensor } from '../tensor.js';\nexport const cast = (x: Tensor) => run();",
    });
    expect(cycles).toEqual(['kernel.ts → tensor.ts → ops/cast.ts → kernel.ts']);
  });
});
