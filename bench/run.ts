// `npm run bench` (root; network namespaces): convergence time, metadata requests and apply cost
// of cloud-network on synthetic instances up to 15 interfaces x 50 addresses, for EC2, Azure and
// GCP, with 0 and 2 ms of metadata latency; the daemon's refresh and idle cost. A table goes to
// stdout, everything to bench-results.json. See docs/performance.md.
//
// Environment:
//   BENCH_PROVIDERS     ec2,azure,gcp (default: all three)
//   BENCH_SIZES         interfaces x addresses, e.g. 1x1,15x50 (default 1,4,15 x 1,10,50)
//   BENCH_LATENCIES     metadata latency per request in ms, e.g. 0,2 (default 0,2)
//   BENCH_IDLE_SECONDS  daemon idle window (default 60)
//   BENCH_REPEAT        fresh-world runs per one-shot case and per bare ip -batch, medians reported (default 3)
//   BENCH_OUTPUT        JSON output (default <repo>/bench-results.json)
//   BENCH_PROGRAM       bundle (default: the single-file build the packages install) or dist (bin/cloud-network)
//   BENCH_BUNDLE        another bundle file to run instead of the fresh build (to measure a proposed change)
//   BENCH_NODE_ARGS     node/V8 flags before the bundle, e.g. "--lite-mode --max-semi-space-size=1"
//   BENCH_NODE_OPTIONS  NODE_OPTIONS for the program (V8 settings that NODE_OPTIONS allows)
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, type Provider } from '../test/support/fixture.js';
import { requireRoot } from '../test/support/world.js';
import { REAL_IP } from './iplog.js';
import { measureBaseline, measureIdle, measureOnce, measureRefresh, type Baseline, type RefreshRun } from './measure.js';
import { sizeLabel, type Size } from './metadata.js';
import { program, type ProgramKind } from './program.js';
import { checkTargets, report, type CaseResult, type DaemonResult, type Results } from './report.js';

const PROVIDERS: Provider[] = ['ec2', 'azure', 'gcp'];

/** The flags the installed /usr/bin/cloud-network launcher gives node (Makefile, install). */
const INSTALLED_NODE_ARGS = '--lite-mode --no-expose-wasm';

function list(name: string, fallback: string): string[] {
  return (process.env[name] ?? fallback)
    .split(/[\s,]+/)
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

export function options() {
  const providers = list('BENCH_PROVIDERS', PROVIDERS.join(',')).map((name) => {
    if (!(PROVIDERS as string[]).includes(name)) throw new Error(`BENCH_PROVIDERS: unknown provider ${name} (ec2, azure, gcp)`);
    return name as Provider;
  });
  const sizes = list('BENCH_SIZES', '1x1,1x10,1x50,4x1,4x10,4x50,15x1,15x10,15x50').map((text): Size => {
    const match = /^(\d+)x(\d+)$/.exec(text);
    if (!match) throw new Error(`BENCH_SIZES: ${text} is not INTERFACESxADDRESSES, e.g. 15x50`);
    return { nics: Number(match[1]), addresses: Number(match[2]) };
  });
  const latencies = list('BENCH_LATENCIES', '0,2').map((text) => {
    const value = Number(text);
    if (!Number.isFinite(value) || value < 0) throw new Error(`BENCH_LATENCIES: ${text} is not a latency in ms`);
    return value;
  });
  const idleSeconds = Number(process.env.BENCH_IDLE_SECONDS ?? 60);
  if (!Number.isFinite(idleSeconds) || idleSeconds <= 0) throw new Error(`BENCH_IDLE_SECONDS: ${process.env.BENCH_IDLE_SECONDS} is not a number of seconds`);
  const output = process.env.BENCH_OUTPUT || join(REPO_ROOT, 'bench-results.json');
  const repeat = Number(process.env.BENCH_REPEAT ?? 3);
  if (!Number.isInteger(repeat) || repeat < 1) throw new Error(`BENCH_REPEAT: ${process.env.BENCH_REPEAT} is not a positive integer`);
  const kind = process.env.BENCH_PROGRAM || 'bundle';
  if (kind !== 'bundle' && kind !== 'dist') throw new Error(`BENCH_PROGRAM: ${kind} is neither bundle nor dist`);
  if (providers.length === 0 || sizes.length === 0 || latencies.length === 0) throw new Error('BENCH_PROVIDERS, BENCH_SIZES and BENCH_LATENCIES must not be empty');
  return { providers, sizes, latencies, idleSeconds, repeat, output, program: kind as ProgramKind, nodeOptions: process.env.BENCH_NODE_OPTIONS ?? '', bundle: process.env.BENCH_BUNDLE || undefined, nodeArgs: kind === 'bundle' ? list('BENCH_NODE_ARGS', INSTALLED_NODE_ARGS) : [] };
}

function host(): Record<string, string | number> {
  const cpus = os.cpus();
  const ipVersion = (() => {
    try {
      return execFileSync(REAL_IP, ['-V'], { encoding: 'utf8' }).trim();
    } catch {
      return 'unknown';
    }
  })();
  const commit = (() => {
    try {
      const head = execFileSync('git', ['-C', REPO_ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
      const dirty = execFileSync('git', ['-C', REPO_ROOT, 'status', '--porcelain', '--', 'src'], { encoding: 'utf8' }).trim() !== '';
      return `${head}${dirty ? ' (src modified)' : ''}`;
    } catch {
      return 'unknown';
    }
  })();
  return {
    commit,
    loadavgEnd: os.loadavg().map((load) => load.toFixed(2)).join(' '),
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    kernel: os.release(),
    node: process.version,
    iproute2: ipVersion,
  };
}

const progress = (text: string) => process.stderr.write(`bench: ${text}\n`);

export async function main(): Promise<Results> {
  requireRoot();
  const o = options();
  const started = Date.now();
  const loadBefore = os.loadavg().map((load) => load.toFixed(2)).join(' ');
  const p = program(o.program, o.bundle, o.nodeArgs);
  // Warm the page cache, so that the first measured start is not the one that reads the program from disk.
  execFileSync(p.argv[0]!, [...p.argv.slice(1), '--version'], { stdio: 'ignore' });

  const cases: CaseResult[] = [];
  for (const provider of o.providers) {
    for (const size of o.sizes) {
      let baseline: Baseline | undefined;
      for (const latencyMs of o.latencies) {
        progress(`${provider} ${sizeLabel(size)} ${latencyMs} ms: --once cold and steady`);
        const once = await measureOnce(p, provider, size, latencyMs, o.repeat);
        if (!baseline) {
          progress(`${provider} ${sizeLabel(size)}: the same script with ip -batch and one ip per line`);
          baseline = await measureBaseline(p, provider, size, once.cold.script, o.repeat);
        }
        const { script: _script, ...cold } = once.cold;
        const applyMs = cold.applyMs;
        cases.push({
          provider,
          size,
          latencyMs,
          cold,
          steady: once.steady,
          samples: once.samples,
          baseline,
          ...(applyMs !== undefined && baseline.bareBatchMs > 0 ? { overheadRatio: applyMs / baseline.bareBatchMs } : {}),
          ...(applyMs !== undefined && applyMs > 0 ? { speedup: baseline.perCommandMs / applyMs } : {}),
        });
      }
    }
  }

  // The daemon at the largest size and latency asked for: the idle daemons of all providers run
  // side by side (they are idle: nothing to share), the timer refreshes one after the other.
  const size = [...o.sizes].sort((a, b) => b.nics * b.addresses - a.nics * a.addresses)[0]!;
  const latencyMs = Math.max(...o.latencies);
  progress(`daemons ${o.providers.join(', ')} ${sizeLabel(size)} ${latencyMs} ms: ${o.idleSeconds} s idle, alongside one timer refresh each`);
  let ready = 0;
  let allReady!: () => void;
  const idleStarted = new Promise<void>((resolve) => (allReady = resolve));
  const idle = Promise.all(
    o.providers.map((provider) =>
      measureIdle(p, provider, size, latencyMs, o.idleSeconds, () => {
        if (++ready === o.providers.length) allReady();
      }),
    ),
  );
  // A failed idle daemon must not leave the refreshes waiting for the others to get ready.
  await Promise.race([idleStarted, idle]);
  const refreshes: RefreshRun[] = [];
  for (const provider of o.providers) {
    progress(`daemon ${provider}: timer refresh`);
    refreshes.push(await measureRefresh(p, provider, size, latencyMs));
  }
  const idles = await idle;
  const daemon: DaemonResult[] = o.providers.map((provider, i) => ({ provider, size, latencyMs, refresh: refreshes[i]!, idle: idles[i]! }));

  const results: Results = {
    version: 1,
    date: new Date().toISOString(),
    durationSeconds: (Date.now() - started) / 1000,
    // Other work on the machine shows in the timings: the load averages at start and end say how much.
    host: { loadavgStart: loadBefore, ...host() },
    options: { providers: o.providers, sizes: o.sizes.map(sizeLabel), latenciesMs: o.latencies, idleSeconds: o.idleSeconds, repeat: o.repeat, program: o.program === 'bundle' && o.bundle ? o.bundle : o.program, nodeOptions: o.nodeOptions, nodeArgs: o.nodeArgs.join(' ') },
    cases,
    daemon,
    targets: checkTargets(cases, daemon),
  };
  writeFileSync(o.output, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(report(results));
  process.stdout.write(`\nJSON: ${o.output}\n`);
  return results;
}

// The world deletes its namespaces on 'exit'; make Ctrl-C and SIGTERM go through it.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
