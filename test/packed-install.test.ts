/**
 * kexue as a user installs it, not as a checkout runs it: each published package packed with
 * `pnpm pack` (its prepack compiles dist/), the tarballs installed into an empty project outside the
 * repository (core-cuda's install script builds the addon there, CPU-only with KEXUE_NO_CUDA=1),
 * and the installed `kexue` run from a directory outside the repository, with none of the
 * repository's bins on PATH: --help, a 2-update NER run on the demo data that ships in
 * @kexue/models, a user's script serving that run with predictAsync (a worker thread that must
 * load the installed dist/), and `kexue bench`, whose package is not part of an install.
 *
 * The install needs no network: the @kexue/* packages come only from the tarballs (overrides, never
 * a registry), and the repository's lockfile seeds the project's so that pnpm picks the
 * third-party versions scripts/setup.sh put into the store. Skipped, with the reason, only where
 * the machine lacks what building the addon needs (pnpm, cmake, a C++ compiler, oneDNN, Highway).
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The packages an install is made of (bench/ is a workspace package only). */
const PACKAGES = ['core-cuda', 'optimizers', 'models', 'cli'] as const;
type Pkg = (typeof PACKAGES)[number];
/** The native build is most of the time: a few minutes on 2 cores, more on a loaded machine. */
const SETUP_TIMEOUT = 20 * 60_000;

const inside = (dir: string, parent: string) => {
  const rel = path.relative(parent, dir);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
};

/** What the machine lacks to build and install kexue, if anything (scripts/setup.sh installs all of it). */
function missingPrerequisite(): string | undefined {
  const has = (cmd: string) => !spawnSync(cmd, ['--version'], { stdio: 'ignore' }).error;
  if (!has('pnpm')) return 'pnpm is not installed';
  if (!has('cmake')) return 'cmake is not installed';
  if (!has('c++') && !has('g++')) return 'no C++ compiler (g++)';
  if (!has('make') && !has('ninja')) return 'neither make nor ninja is installed';
  if (!existsSync('/usr/include/dnnl.hpp')) return 'no dnnl.hpp (libdnnl-dev is not installed)';
  if (!existsSync('/usr/include/hwy/highway.h')) return 'no hwy/highway.h (libhwy-dev is not installed)';
  return undefined;
}

/**
 * A user's environment: PATH without the repository's node_modules/.bin (so no tsx, tsc or vitest),
 * and nothing from the pnpm/vitest run that started this test (npm_* variables, NODE_OPTIONS, an
 * addon override).
 */
function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_/i.test(k) || /^VITEST/.test(k) || ['INIT_CWD', 'PNPM_SCRIPT_SRC_DIR', 'NODE_OPTIONS', 'KEXUE_ADDON', 'KEXUE_CLI_DIST'].includes(k)) continue;
    env[k] = v;
  }
  env.PATH = (process.env.PATH ?? '')
    .split(path.delimiter)
    .filter((d) => d !== '' && !inside(path.resolve(d), root))
    .join(path.delimiter);
  return { ...env, ...extra };
}

const tail = (r: SpawnSyncReturns<string>, n = 40) => `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-n).join('\n');

function check(what: string, r: SpawnSyncReturns<string>): SpawnSyncReturns<string> {
  if (r.error || r.status !== 0) throw new Error(`${what} failed (${r.error?.message ?? `exit ${r.status}`}):\n${tail(r)}`);
  return r;
}

const missing = missingPrerequisite();
let tmp: string;
let project: string;
let work: string;
/** Each package's installed directory (its real path in the project's node_modules/.pnpm). */
const installed = {} as Record<Pkg, string>;
/** The files each tarball holds. */
const packed = {} as Record<Pkg, string[]>;

function kexue(...args: string[]) {
  const r = spawnSync(path.join(project, 'node_modules', '.bin', 'kexue'), args, {
    cwd: work,
    encoding: 'utf8',
    env: userEnv({ KEXUE_PROGRESS: 'lines' }),
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, error: r.error };
}

beforeAll(() => {
  if (missing) {
    console.warn(`packed install: skipped: ${missing}`);
    return;
  }
  tmp = realpathSync(mkdtempSync(path.join(tmpdir(), 'kexue-packed-')));
  expect(inside(tmp, root)).toBe(false);
  const tarballs = path.join(tmp, 'tarballs');
  project = path.join(tmp, 'project');
  work = path.join(tmp, 'work');
  for (const d of [tarballs, project, work]) mkdirSync(d);
  const t0 = Date.now();

  // Pack: prepack compiles dist/ (tsc --build); pnpm replaces the workspace:* ranges with versions.
  const tarball = {} as Record<Pkg, string>;
  for (const p of PACKAGES) {
    const r = check(`pnpm pack (${p})`, spawnSync('pnpm', ['pack', '--json', '--pack-destination', tarballs], { cwd: path.join(root, 'packages', p), encoding: 'utf8' }));
    const info = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as { filename: string; files: { path: string }[] };
    tarball[p] = path.basename(info.filename);
    packed[p] = info.files.map((f) => f.path);
  }
  const t1 = Date.now();

  // An empty ESM project that depends on the CLI and, to use them from its own code, on the core
  // and the models; every @kexue/* package comes from its tarball.
  const spec = (p: Pkg) => `file:../tarballs/${tarball[p]}`;
  const dependencies = { '@kexue/cli': spec('cli'), '@kexue/core-cuda': spec('core-cuda'), '@kexue/models': spec('models') };
  writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'kexue-packed-install', private: true, type: 'module', dependencies }, null, 2));
  writeFileSync(
    path.join(project, 'pnpm-workspace.yaml'),
    [
      'overrides:',
      ...PACKAGES.map((p) => `  '@kexue/${p}': ${spec(p)}`),
      // core-cuda's install script builds the addon (a dependency's scripts run only when allowed)
      'allowBuilds:',
      `  '@kexue/core-cuda@${spec('core-cuda')}': true`,
      // build in this project every time: the test is that the install script builds the addon
      'sideEffectsCache: false',
      '',
    ].join('\n'),
  );
  // The repository's lockfile as a seed: pnpm prefers the versions it names, which are in the store.
  copyFileSync(path.join(root, 'pnpm-lock.yaml'), path.join(project, 'pnpm-lock.yaml'));
  const store = check('pnpm store path', spawnSync('pnpm', ['store', 'path'], { cwd: root, encoding: 'utf8' })).stdout.trim();
  const install = (mode: string) =>
    // --no-frozen-lockfile: the seed lockfile is a starting point, not this project's (pnpm freezes it under CI=true)
    spawnSync('pnpm', ['install', mode, '--no-frozen-lockfile', '--store-dir', store], { cwd: project, encoding: 'utf8', env: userEnv({ KEXUE_NO_CUDA: '1' }) });
  let r = install('--offline');
  if (r.status !== 0 && /offline|metadata|package mirror/i.test(`${r.stdout}${r.stderr}`)) {
    // A store or metadata cache that lacks something (not a fresh scripts/setup.sh machine): the registry fills it in.
    console.warn(`packed install: offline install failed, retrying with the registry:\n${tail(r, 8)}`);
    r = install('--prefer-offline');
  }
  check('pnpm install of the tarballs', r);
  const t2 = Date.now();

  installed.cli = realpathSync(path.join(project, 'node_modules', '@kexue', 'cli'));
  // the others as the CLI resolves them (their dist/index.js, two levels below the package)
  const fromCli = createRequire(path.join(installed.cli, 'package.json'));
  for (const p of PACKAGES) if (p !== 'cli') installed[p] = path.resolve(realpathSync(fromCli.resolve(`@kexue/${p}`)), '../..');
  const addon = path.join(installed['core-cuda'], 'build', 'Release', 'kexue_core.node');
  if (!existsSync(addon)) throw new Error(`the install did not build ${addon}:\n${tail(r)}`);
  console.info(`packed install: pack ${((t1 - t0) / 1000).toFixed(0)} s, install with the addon build ${((t2 - t1) / 1000).toFixed(0)} s`);
}, SETUP_TIMEOUT);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('kexue installed from its packed tarballs', () => {
  it('ships compiled dist/ and what runs, never src/, with versions instead of workspace ranges', (ctx) => {
    ctx.skip(missing !== undefined, `skipped: ${missing}`);
    for (const p of PACKAGES) {
      expect(packed[p]).toContain('dist/index.js');
      expect(packed[p]).toContain('dist/index.d.ts');
      expect(packed[p].filter((f) => f.startsWith('src/') || f.endsWith('.map'))).toEqual([]);
      const manifest = readFileSync(path.join(installed[p], 'package.json'), 'utf8');
      expect(manifest).not.toContain('workspace:');
      // no 'source' export condition: it would point at src/, which is not shipped
      expect(JSON.stringify((JSON.parse(manifest) as { exports: unknown }).exports)).not.toContain('src/');
    }
    expect(packed['core-cuda']).toContain('CMakeLists.txt');
    expect(packed['core-cuda'].some((f) => f.startsWith('native/') && f.endsWith('.cpp'))).toBe(true);
    expect(packed.models).toEqual(expect.arrayContaining(['demo/cluener/train.jsonl', 'demo/cluener/dev.jsonl', 'vocab/bert-base-chinese/vocab.txt']));
    expect(packed.cli).toContain('bin/kexue.js');
    // neither tsx nor any other dev dependency (nor the bench package) is installed
    const store = readdirSync(path.join(project, 'node_modules', '.pnpm'));
    expect(store.filter((d) => /^(tsx|typescript|vitest|@kexue\+bench)@/.test(d))).toEqual([]);
  });

  it('resolves the installed packages to dist/ even under the source condition', (ctx) => {
    ctx.skip(missing !== undefined, `skipped: ${missing}`);
    const names = PACKAGES.filter((p) => p !== 'cli').map((p) => `@kexue/${p}`);
    const r = spawnSync(process.execPath, ['--conditions=source', '--input-type=module', '-e', `for (const p of ${JSON.stringify(names)}) console.log(import.meta.resolve(p))`], {
      cwd: installed.cli,
      encoding: 'utf8',
      env: userEnv(),
    });
    expect(r.stderr).toBe('');
    const urls = r.stdout.trim().split('\n');
    expect(urls).toHaveLength(names.length);
    for (const u of urls) expect(u).toMatch(/\/dist\/index\.js$/);
  });

  it("a user's own ESM script imports the core and the models and computes", (ctx) => {
    ctx.skip(missing !== undefined, `skipped: ${missing}`);
    writeFileSync(
      path.join(project, 'user.js'),
      [
        "import * as kx from '@kexue/core-cuda';",
        "import { BertTokenizer, BUNDLED_VOCABS, TASKS } from '@kexue/models';",
        'const y = kx.matmul(kx.tensor(new Float32Array([1, 2, 3, 4]), [2, 2]), kx.tensor(new Float32Array([0, 1, 1, 0]), [2, 2]));',
        "const ids = BertTokenizer.fromVocab(BUNDLED_VOCABS.bertBaseChinese).encode('北京').ids;",
        'console.log(JSON.stringify({ y: Array.from(y.toFloat32Array()), ids, tasks: TASKS.map((t) => t.name) }));',
      ].join('\n'),
    );
    const r = spawnSync(process.execPath, ['user.js'], { cwd: project, encoding: 'utf8', env: userEnv() });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ y: [2, 1, 4, 3], ids: [101, 1266, 776, 102], tasks: ['ner', 'mlm', 'summarize', 'pegasus', 'vae'] });
  });

  it('kexue --help lists the commands', (ctx) => {
    ctx.skip(missing !== undefined, `skipped: ${missing}`);
    const r = kexue('--help');
    expect(r.error).toBeUndefined();
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    for (const c of ['train', 'eval', 'predict', 'tokenize', 'info', 'bench']) expect(r.stdout).toMatch(new RegExp(`^ +${c} `, 'm'));
    expect(kexue('--version').stdout.trim()).toBe((JSON.parse(readFileSync(path.join(installed.cli, 'package.json'), 'utf8')) as { version: string }).version);
  });

  it('kexue train ner: 2 updates on the demo data shipped in @kexue/models', (ctx) => {
    ctx.skip(missing !== undefined, `skipped: ${missing}`);
    const run = path.join(tmp, 'run');
    const tiny = ['model.hidden=32', 'model.layers=2', 'model.heads=2', 'model.intermediate=64', 'head.size=16', 'data.max_length=48', 'train.batch_size=8'];
    const r = kexue('train', 'ner', ...tiny, 'train.steps=2', 'train.log_every=1', '--run-dir', run);
    expect(r.stderr).toContain('dev F1');
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout.trim().split('\n').pop()!) as { step: number }).step).toBe(2);
    // the default data is the installed package's, not the repository's
    const config = JSON.parse(readFileSync(path.join(run, 'config.json'), 'utf8')) as { data: { train: string; dev: string } };
    for (const f of [config.data.train, config.data.dev]) expect(inside(realpathSync(f), installed.models)).toBe(true);
    const metrics = readFileSync(path.join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { kind: string; step: number });
    expect(metrics.filter((m) => m.kind === 'train').map((m) => m.step)).toEqual([1, 2]);
    const index = JSON.parse(readFileSync(path.join(run, 'checkpoints.json'), 'utf8')) as { last: { dir: string; step: number } };
    expect(index.last.step).toBe(2);
    expect(existsSync(path.join(run, index.last.dir, 'model.safetensors'))).toBe(true);
  });

  it("a user's script serves NER from the trained run with predictAsync: the worker thread runs the installed dist/", (ctx) => {
    ctx.skip(missing !== undefined, `skipped: ${missing}`);
    const run = path.join(tmp, 'run'); // the train test's
    writeFileSync(
      path.join(project, 'serve.js'),
      [
        "import { NerPredictor } from '@kexue/models';",
        `const p = NerPredictor.load(${JSON.stringify(run)}, 'last');`,
        "const texts = ['浙商银行企业信贷部叶老桂博士', '北京大学的学生在上海工作', '张三去了腾讯公司'];",
        'const answers = await Promise.all(texts.map((t) => p.predictAsync([t], 32, -1)));',
        'const same = JSON.stringify(answers) === JSON.stringify(texts.map((t) => p.predict([t], 32, -1)));',
        'console.log(JSON.stringify({ same, entities: answers.flat(2).length > 0 }));',
        'p.dispose();',
      ].join('\n'),
    );
    const r = spawnSync(process.execPath, ['serve.js'], { cwd: project, encoding: 'utf8', env: userEnv() });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({ same: true, entities: true });
  });

  it('kexue bench says the benchmarks are not installed and how to run them', (ctx) => {
    ctx.skip(missing !== undefined, `skipped: ${missing}`);
    const r = kexue('bench', '--list');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^kexue: error \[E_LOAD\]: kexue bench needs @kexue\/bench, which is not installed here.*`pnpm bench`/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});
