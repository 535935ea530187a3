// The benchmark (bench/, `npm run bench`) on its smallest size, once: it must run to the end and
// write bench-results.json with every field docs/performance.md reads. No timing is asserted
// here: CI machines are too uneven for that; the numbers are for people (docs/performance.md).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, expect, test } from 'vitest';
import type { Results } from '../../bench/report.js';
import { REPO_ROOT } from '../support/fixture.js';
import { requireRoot } from '../support/world.js';

const dir = mkdtempSync(join(tmpdir(), 'cn-bench-smoke-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const isCount = (value: unknown) => Number.isInteger(value) && (value as number) >= 0;
const isTime = (value: unknown) => typeof value === 'number' && Number.isFinite(value) && value >= 0;

test('the benchmark runs 1x1 at 0 ms for every provider and writes its JSON', async () => {
  requireRoot();
  const output = join(dir, 'bench-results.json');
  // What `npm run bench` does after the tsc build: the shipped bundle, then the benchmark.
  await execa(process.execPath, ['packaging/build.mjs', '--out-dir', 'build/bench'], { cwd: REPO_ROOT });
  const run = await execa(process.execPath, ['scripts/run-ts.mjs', 'bench/run.ts'], {
    cwd: REPO_ROOT,
    env: { BENCH_SIZES: '1x1', BENCH_LATENCIES: '0', BENCH_IDLE_SECONDS: '2', BENCH_REPEAT: '1', BENCH_OUTPUT: output },
    reject: false,
    timeout: 200_000,
  });
  expect(run.exitCode, `stdout:\n${run.stdout}\nstderr:\n${run.stderr}`).toBe(0);
  expect(run.stdout).toContain('| provider | size | lat ms | cold ms |');
  expect(run.stdout).toContain('Targets:');

  const results = JSON.parse(readFileSync(output, 'utf8')) as Results;
  expect(results.version).toBe(1);
  expect(results.options).toMatchObject({ providers: ['ec2', 'azure', 'gcp'], sizes: ['1x1'], latenciesMs: [0], idleSeconds: 2, repeat: 1, program: 'bundle' });
  expect(results.cases.map((c) => c.provider)).toEqual(['ec2', 'azure', 'gcp']);
  for (const c of results.cases) {
    expect(c.size).toEqual({ nics: 1, addresses: 1 });
    expect(c.latencyMs).toBe(0);
    for (const run of [c.cold, c.steady]) {
      expect(isTime(run.wallMs)).toBe(true);
      expect(isCount(run.changes)).toBe(true);
      for (const key of ['total', 'token', 'network', 'documents'] as const) expect(isCount(run.requests[key]), key).toBe(true);
      for (const key of ['reads', 'writes', 'other'] as const) expect(isCount(run.ip[key]), key).toBe(true);
    }
    // The same script applied by the program, by one ip -batch and by one ip per line.
    expect(typeof c.baseline.scriptMatchesCold).toBe('boolean');
    expect(isCount(c.baseline.scriptLines)).toBe(true);
    expect(isCount(c.baseline.perCommandFailures)).toBe(true);
    expect(isTime(c.baseline.bareBatchMs)).toBe(true);
    expect(isTime(c.baseline.perCommandMs)).toBe(true);
    expect(c.samples.coldMs).toHaveLength(1);
  }
  // GCP's synthetic 1x1 has an MTU to set: a write, so the apply comparison and the phases are there too.
  const gcp = results.cases[2]!;
  expect(gcp.cold.changes).toBeGreaterThan(0);
  for (const key of ['applyMs', 'writeMs', 'reconcileMs', 'convergedMs'] as const) expect(isTime(gcp.cold[key]), key).toBe(true);
  for (const key of ['startup', 'imds', 'imdsNetwork', 'parse', 'kernelRead', 'prepare', 'write', 'finish'] as const) {
    expect(typeof gcp.cold.phases?.[key], key).toBe('number');
  }
  expect(isTime(gcp.overheadRatio)).toBe(true);
  expect(isTime(gcp.speedup)).toBe(true);

  expect(results.daemon.map((d) => d.provider)).toEqual(['ec2', 'azure', 'gcp']);
  for (const d of results.daemon) {
    expect(isTime(d.refresh.coldStartMs)).toBe(true);
    expect(d.refresh.refreshSeconds).toBe(5);
    // The refresh window opens with a metadata request, so it holds at least that one.
    expect(d.refresh.requests.total).toBeGreaterThan(0);
    for (const key of ['reads', 'writes', 'other'] as const) expect(isCount(d.refresh.ip[key]), key).toBe(true);
    expect(isTime(d.refresh.wallMs)).toBe(true);
    expect(d.idle.seconds).toBeGreaterThanOrEqual(2);
    expect(d.idle.pid).toBeGreaterThan(1);
    for (const key of ['rssKb', 'rssAnonKb', 'rssFileKb', 'rssMaxKb', 'hwmKb'] as const) expect(d.idle[key], key).toBeGreaterThan(0);
    for (const key of ['cpuMs', 'cpuPercent', 'wakeupsPerSecond'] as const) expect(isTime(d.idle[key]), key).toBe(true);
    for (const key of ['requests', 'ipProcesses'] as const) expect(isCount(d.idle[key]), key).toBe(true);
  }

  expect(results.targets.length).toBeGreaterThan(0);
  for (const t of results.targets) {
    expect(typeof t.name).toBe('string');
    expect(typeof t.target).toBe('string');
    expect(typeof t.measured).toBe('string');
    expect(typeof t.met).toBe('boolean');
  }
}, 240_000);
