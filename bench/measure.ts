// The measurements, each on fresh worlds from the end-to-end test world (test/support): the real
// binary in a VM namespace whose veth NICs carry the synthetic metadata's MACs, a mock IMDS on
// the namespace's loopback, the eth0 DHCP address and default route in place (as on a VM).
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expectedState } from '../test/support/expected.js';
import type { Fixture, Provider } from '../test/support/fixture.js';
import { owned } from '../test/support/kernel.js';
import type { LogEntry } from '../test/support/mock-imds.js';
import { createWorld, describeRun, type Daemon, type World } from '../test/support/world.js';
import { countCalls, createIpLog, REAL_IP, type IpCall, type IpCounts, type IpLog } from './iplog.js';
import { sizeLabel, syntheticFixture, type Size } from './metadata.js';
import { contextSwitches, ipChildren, procStat, procStatus, programProcess } from './procfs.js';
import { runProgram, startProgram, type Program } from './program.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Field by field: numbers become the median over `runs`, everything else is taken from the first run. */
export function medianOf<T>(runs: T[]): T {
  const first = runs[0];
  if (typeof first === 'number') return median(runs as number[]) as T;
  if (first === null || typeof first !== 'object' || Array.isArray(first)) return first as T;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(first)) {
    const values = runs.map((run) => (run as Record<string, unknown>)[key]).filter((value) => value !== undefined);
    out[key] = medianOf(values);
  }
  return out as T;
}

/** File mtimes come from the kernel's coarse clock: up to a tick (<= 10 ms) behind Date.now(). */
const COARSE_CLOCK_MS = 10;

export interface RequestCounts {
  total: number;
  /** EC2 IMDSv2 token PUTs. */
  token: number;
  /** What the plan needs: EC2 mac, MAC listing and per-MAC network keys; the Azure/GCP document. */
  network: number;
  /** Everything else: EC2 system keys, display-only per-MAC keys, identity, credentials. */
  documents: number;
}

const EC2_NETWORK_KEY = /^\/latest\/meta-data\/(mac|network\/interfaces\/macs\/|network\/interfaces\/macs\/[^/]+\/(device-number|network-card|network-card-index|local-ipv4s|subnet-ipv4-cidr-block))$/;

const isLongPoll = (entry: LogEntry) => /(^|&)wait_for_change=true/.test(entry.query);

const isNetworkRequest = (provider: Provider, entry: LogEntry) => entry.method !== 'PUT' && (provider !== 'ec2' || EC2_NETWORK_KEY.test(entry.path));

export function countRequests(provider: Provider, entries: LogEntry[]): RequestCounts {
  const counted = entries.filter((entry) => !isLongPoll(entry));
  const token = counted.filter((entry) => entry.method === 'PUT').length;
  const network = counted.filter((entry) => isNetworkRequest(provider, entry)).length;
  return { total: counted.length, token, network, documents: counted.length - token - network };
}

/** Differences between the kernel and SPEC §5 for the world's metadata (no `route get`: 750 processes at 15x50). */
export async function problems(world: World): Promise<string[]> {
  const snap = await world.snapshot();
  const want = expectedState(world.nics);
  const mine = owned(snap);
  const found: string[] = [];
  for (const nic of world.nics) {
    const link = snap.links.find((line) => line.startsWith(`${nic.name} `));
    if (!link?.includes(' up ')) found.push(`link ${nic.name} is not up`);
    if (nic.mtu !== undefined && !link?.includes(` mtu ${nic.mtu} `)) found.push(`link ${nic.name} mtu is not ${nic.mtu}`);
  }
  found.push(...want.addresses.filter((a) => !snap.addresses.includes(a)).map((a) => `missing address ${a}`));
  found.push(...want.rules.filter((r) => !mine.rules.includes(r)).map((r) => `missing rule ${r}`));
  found.push(...mine.rules.filter((r) => !want.rules.includes(r)).map((r) => `extra rule ${r}`));
  found.push(...want.routes.filter((r) => !mine.routes.includes(r)).map((r) => `missing route ${r}`));
  found.push(...mine.routes.filter((r) => !want.routes.includes(r)).map((r) => `extra route ${r}`));
  return found;
}

function assertConverged(what: string, found: string[]): void {
  if (found.length > 0) throw new Error(`${what}: the kernel does not match the metadata:\n  ${found.slice(0, 10).join('\n  ')}${found.length > 10 ? `\n  ... ${found.length - 10} more` : ''}`);
}

async function benchWorld(fixture: Fixture, latencyMs: number, config = ''): Promise<{ world: World; ipLog: IpLog; env: Record<string, string> }> {
  const world = await createWorld({ fixture, dhcp: true, config });
  try {
    const ipLog = createIpLog(world.dir);
    if (latencyMs > 0) await world.mock.addFault({ kind: 'latency', ms: latencyMs });
    await world.mock.resetLog();
    // BENCH_NODE_OPTIONS: measure the program under other V8 settings (e.g. a proposed heap limit).
    const nodeOptions: Record<string, string> = process.env.BENCH_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_NODE_OPTIONS } : {};
    return { world, ipLog, env: { PATH: `${ipLog.dir}:${world.env().PATH}`, ...nodeOptions } };
  } catch (error) {
    await world.destroy();
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// One-shot runs: cold start and the steady second run

export interface OnceRun {
  wallMs: number;
  requests: RequestCounts;
  ip: IpCounts;
  /** Script lines the run applied (its "applied:" log lines). */
  changes: number;
}

export interface ColdRun extends OnceRun {
  /** From the end of the kernel read to the end of the write: plan, render, spawn, ip -batch. */
  applyMs?: number;
  /** The `ip -force -batch -` process alone. */
  writeMs?: number;
  /** From the start of the kernel read to the end of the last ip (re-read). */
  reconcileMs?: number;
  /**
   * Process start to the moment the kernel matches the metadata: the end of the ip write, or
   * with nothing to change the end of the kernel read that showed it.
   */
  convergedMs?: number;
  /** Where the cold run's time goes, in order (ms). */
  phases?: {
    /** Process start (ip netns exec, node, module loading, config) to the first metadata request. */
    startup: number;
    /** First metadata request to the end of the last answer. */
    imds: number;
    /** First metadata request to the end of the last answer the plan needs (EC2: before the display documents). */
    imdsNetwork: number;
    /** Last answer to the start of the kernel read (parsing, validation). */
    parse: number;
    /** The kernel read (`ip -j -batch`). */
    kernelRead: number;
    /** End of the read to the start of the write: kernel JSON parsed, plan, render, ip spawned. */
    prepare: number;
    /** The `ip -force -batch -` process (= writeMs). */
    write: number;
    /** End of the write to the exit: log lines, re-read, state and documents written, exit. */
    finish: number;
  };
  script: string;
}

export interface OnceCase {
  cold: ColdRun;
  steady: OnceRun;
}

/** When the kernel matched: the end of the first write, or of the first read when nothing was written. */
function converged(calls: IpCall[]): number | undefined {
  return (calls.find((call) => call.kind === 'write') ?? calls.find((call) => call.kind === 'read'))?.end;
}

const appliedLines = (stderr: string) => [...stderr.matchAll(/^info: applied: (.*)$/gm)].map((match) => `${match[1]}\n`);

async function once(p: Program, world: World, ipLog: IpLog, env: Record<string, string>): Promise<{ run: OnceRun; calls: IpCall[]; requests: LogEntry[]; stderr: string; started: number }> {
  await world.mock.resetLog();
  const started = Date.now();
  const result = await runProgram(world, p, ['--once'], env);
  if (result.exitCode !== 0) throw new Error(`cloud-network --once failed in ${world.name}: ${describeRun(result)}`);
  const calls = ipLog.calls(started);
  const requests = await world.mock.log();
  return {
    requests,
    run: {
      wallMs: result.durationMs,
      requests: countRequests(world.provider, requests),
      ip: countCalls(calls),
      changes: appliedLines(result.stderr).length,
    },
    calls,
    stderr: result.stderr,
    started,
  };
}

/**
 * Cold `--once` on a fresh world, then a second `--once` with nothing to change; `repeat` times on
 * fresh worlds, every timing the median (the run's cold script is the first run's).
 */
export async function measureOnce(p: Program, provider: Provider, size: Size, latencyMs: number, repeat: number): Promise<OnceCase & { samples: { coldMs: number[]; applyMs: number[]; steadyMs: number[] } }> {
  const runs: OnceCase[] = [];
  for (let run = 0; run < repeat; run++) runs.push(await measureOnceRun(p, provider, size, latencyMs));
  return {
    ...medianOf(runs),
    samples: {
      coldMs: runs.map((run) => run.cold.wallMs),
      applyMs: runs.flatMap((run) => run.cold.applyMs ?? []),
      steadyMs: runs.map((run) => run.steady.wallMs),
    },
  };
}

async function measureOnceRun(p: Program, provider: Provider, size: Size, latencyMs: number): Promise<OnceCase> {
  const { world, ipLog, env } = await benchWorld(syntheticFixture(provider, size), latencyMs);
  try {
    const cold = await once(p, world, ipLog, env);
    assertConverged(`${provider} ${sizeLabel(size)} cold --once`, await problems(world));
    const read = cold.calls.find((call) => call.kind === 'read');
    const write = cold.calls.find((call) => call.kind === 'write');
    const last = cold.calls.at(-1);
    const firstRequest = cold.requests[0];
    const answered = Math.max(...cold.requests.map((entry) => entry.time + (entry.durationMs ?? 0)));
    const networkAnswered = Math.max(
      ...cold.requests.filter((entry) => isNetworkRequest(provider, entry)).map((entry) => entry.time + (entry.durationMs ?? 0)),
    );
    const exited = cold.started + cold.run.wallMs;
    const coldRun: ColdRun = {
      ...cold.run,
      script: appliedLines(cold.stderr).join(''),
      ...(read?.end !== undefined && write?.end !== undefined ? { applyMs: write.end - read.end } : {}),
      ...(write?.end !== undefined ? { writeMs: write.end - write.start } : {}),
      ...(converged(cold.calls) !== undefined ? { convergedMs: converged(cold.calls)! - cold.started } : {}),
      ...(read && last?.end !== undefined ? { reconcileMs: last.end - read.start } : {}),
      ...(firstRequest && read?.end !== undefined && write?.end !== undefined
        ? {
            phases: {
              startup: firstRequest.time - cold.started,
              imds: answered - firstRequest.time,
              imdsNetwork: networkAnswered - firstRequest.time,
              parse: read.start - answered,
              kernelRead: read.end - read.start,
              prepare: write.start - read.end,
              write: write.end - write.start,
              finish: exited - write.end,
            },
          }
        : {}),
    };
    const steady = await once(p, world, ipLog, env);
    return { cold: coldRun, steady: steady.run };
  } finally {
    await world.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// The same script without cloud-network: one `ip -force -batch -`, and one `ip` per line

export interface Baseline {
  /** `--dry-run` script on a fresh world: line count, and whether it equals what the cold run applied. */
  scriptLines: number;
  scriptMatchesCold: boolean;
  /** When they differ: the first differing line of each (cold run's applied lines, --dry-run). */
  scriptDifference?: { line: number; cold?: string; dryRun?: string; coldLines: number; dryRunLines: number };
  /** Median of `bareBatchSamplesMs`: one fresh world per sample. */
  bareBatchMs: number;
  bareBatchSamplesMs: number[];
  /** One sample: it takes seconds at 15x50. */
  perCommandMs: number;
  perCommandFailures: number;
}

/** Runs `command` in the world's namespace and returns how long it took there (bash clock, no spawn overhead). */
async function timeIn(world: World, command: string, input?: string): Promise<{ ms: number; stderr: string }> {
  const script = `s=$EPOCHREALTIME; ${command}; rc=$?; e=$EPOCHREALTIME; echo "TIME $s $e" >&2; exit $rc`;
  const result = await world.exec(['bash', '-c', script], { check: false, ...(input === undefined ? {} : { input }) });
  const match = /TIME (\S+) (\S+)/.exec(result.stderr);
  if (!match) throw new Error(`timing ${command} in ${world.name} failed: ${result.stderr}`);
  if (result.exitCode !== 0) throw new Error(`${command} in ${world.name} exited ${result.exitCode}: ${result.stderr}`);
  return { ms: (Number(match[2]) - Number(match[1])) * 1000, stderr: result.stderr.replace(/TIME .*\n?/, '') };
}

function firstDifference(cold: string, dryRun: string): NonNullable<Baseline['scriptDifference']> {
  const a = cold.split('\n');
  const b = dryRun.split('\n');
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return { line: i + 1, cold: a[i], dryRun: b[i], coldLines: a.length - 1, dryRunLines: b.length - 1 };
}

export async function measureBaseline(p: Program, provider: Provider, size: Size, coldScript: string, repeat: number): Promise<Baseline> {
  const fixture = syntheticFixture(provider, size);
  let script = '';
  const bareBatch: number[] = [];
  for (let run = 0; run < repeat; run++) {
    const { world, env } = await benchWorld(fixture, 0);
    try {
      if (run === 0) {
        const dry = await runProgram(world, p, ['--dry-run'], env);
        if (dry.exitCode !== 0) throw new Error(`cloud-network --dry-run failed in ${world.name}: ${describeRun(dry)}`);
        // The world's runner strips the final newline; the script proper ends every line with one.
        script = dry.stdout === '' || dry.stdout.endsWith('\n') ? dry.stdout : `${dry.stdout}\n`;
      }
      bareBatch.push((await timeIn(world, `${REAL_IP} -force -batch -`, script)).ms);
      assertConverged(`${provider} ${sizeLabel(size)} ip -batch of the --dry-run script`, await problems(world));
    } finally {
      await world.destroy();
    }
  }
  const bareBatchMs = median(bareBatch);
  const lines = script.split('\n').filter((line) => line !== '');
  const { world } = await benchWorld(fixture, 0);
  try {
    const file = join(world.dir, 'per-command.sh');
    writeFileSync(file, lines.map((line) => `${REAL_IP} ${line} || failures=$((failures + 1))\n`).join('') + 'echo "FAILURES ${failures:-0}" >&2\n');
    const perCommand = await timeIn(world, `. ${file}`);
    assertConverged(`${provider} ${sizeLabel(size)} one ip per line`, await problems(world));
    return {
      scriptLines: lines.length,
      scriptMatchesCold: script === coldScript,
      ...(script === coldScript ? {} : { scriptDifference: firstDifference(coldScript, script) }),
      bareBatchMs,
      bareBatchSamplesMs: bareBatch,
      perCommandMs: perCommand.ms,
      perCommandFailures: Number(/FAILURES (\d+)/.exec(perCommand.stderr)?.[1] ?? NaN),
    };
  } finally {
    await world.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// The daemon: start to converged, a timer refresh with nothing changed, idle cost

function stateMtime(world: World): { mtimeMs: number; lastRefresh?: string } | undefined {
  const path = join(world.stateDir, 'state.json');
  try {
    const mtimeMs = statSync(path).mtimeMs;
    const state = JSON.parse(readFileSync(path, 'utf8')) as { lastRefresh?: string };
    return { mtimeMs, ...(state.lastRefresh ? { lastRefresh: state.lastRefresh } : {}) };
  } catch {
    return undefined; // not there yet, or caught between write and rename
  }
}

/** Polls until `check` returns a value; the daemon gives no other signal of a finished cycle. */
async function until<T>(what: string, timeoutMs: number, check: () => T | undefined | Promise<T | undefined>, intervalMs = 5): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms`);
    await sleep(intervalMs);
  }
}

interface StartedDaemon {
  world: World;
  ipLog: IpLog;
  daemon: Daemon;
  /** Spawn to the kernel matching the metadata (see converged()). */
  convergedMs: number;
  /** The first reconcile's state.json write, ms since the epoch: the end of the first cycle. */
  cycleEndAt: number;
}

async function startDaemon(p: Program, provider: Provider, size: Size, latencyMs: number, config: string): Promise<StartedDaemon> {
  const { world, ipLog, env } = await benchWorld(syntheticFixture(provider, size), latencyMs, config);
  try {
    const spawned = Date.now();
    const daemon = startProgram(world, p, [], env);
    const state = await until('first reconcile (state.json with lastRefresh)', 60_000, () => {
      if (daemon.child.exitCode !== null) throw new Error(`daemon exited: ${daemon.output()}`);
      const found = stateMtime(world);
      return found?.lastRefresh ? found : undefined;
    });
    assertConverged(`${provider} ${sizeLabel(size)} daemon`, await problems(world));
    const calls = ipLog.calls(spawned);
    const cycleEndAt = Math.max(state.mtimeMs, ...calls.map((call) => call.end ?? 0));
    return { world, ipLog, daemon, convergedMs: (converged(calls) ?? cycleEndAt) - spawned, cycleEndAt };
  } catch (error) {
    await world.destroy();
    throw error;
  }
}

export interface RefreshRun {
  /** Daemon start to the kernel matching the metadata. */
  coldStartMs: number;
  refreshSeconds: number;
  requests: RequestCounts;
  ip: IpCounts;
  /** First metadata request of the timer refresh to its state.json write. */
  wallMs: number;
}

/** A daemon with RefreshTimer = 5s (the minimum): what its first timer refresh costs when nothing changed. */
export async function measureRefresh(p: Program, provider: Provider, size: Size, latencyMs: number): Promise<RefreshRun> {
  const refreshSeconds = 5;
  const started = await startDaemon(p, provider, size, latencyMs, `[System]\nRefreshTimer = "${refreshSeconds}s"\n`);
  const { world, ipLog, daemon } = started;
  try {
    const after = started.cycleEndAt + 1;
    const first = await until(
      `${provider} timer refresh request`,
      (refreshSeconds + 10) * 1000,
      async () => (await world.mock.log()).find((entry) => entry.time >= after && !isLongPoll(entry)),
      50,
    ).catch(async (error: Error) => {
      const log = (await world.mock.log()).slice(-5).map((entry) => `${entry.time} ${entry.method} ${entry.path}?${entry.query} ${entry.status}`);
      throw new Error(`${error.message} (first cycle ended at ${started.cycleEndAt})\nlast requests:\n${log.join('\n')}\ndaemon output (tail):\n${daemon.output().slice(-2000)}`);
    });
    // mtime comes from the kernel's coarse clock (a few ms behind): it only says that the write
    // happened; the ip log (exact) says when the cycle's last ip process ended.
    const observed = await until('state.json write of the timer refresh', 30_000, () => {
      const state = stateMtime(world);
      return state && state.mtimeMs >= first.time - COARSE_CLOCK_MS ? Date.now() : undefined;
    });
    const entries = (await world.mock.log()).filter((entry) => entry.time >= first.time && entry.time <= observed);
    const calls = ipLog.calls(first.time).filter((call) => call.start <= observed);
    const written = Math.max(stateMtime(world)!.mtimeMs, ...calls.map((call) => call.end ?? 0));
    return {
      coldStartMs: started.convergedMs,
      refreshSeconds,
      requests: countRequests(provider, entries),
      ip: countCalls(calls),
      wallMs: written - first.time,
    };
  } finally {
    await daemon.stop();
    await world.destroy();
  }
}

export interface IdleRun {
  seconds: number;
  pid: number;
  /** True when the program re-executed itself as user cloud-network (SPEC §8). */
  droppedPrivileges: boolean;
  rssKb: number;
  rssAnonKb: number;
  rssFileKb: number;
  rssMaxKb: number;
  /** Peak RSS of the process life (VmHWM): the first reconcile included. */
  hwmKb: number;
  cpuMs: number;
  cpuPercent: number;
  /** Context switches of all the process's threads per second. */
  wakeupsPerSecond: number;
  threads: number;
  requests: number;
  ipProcesses: number;
  monitorRssKb: number;
}

/** Default config (RefreshTimer 300s): after the first reconcile, samples /proc for `seconds`. */
export async function measureIdle(p: Program, provider: Provider, size: Size, latencyMs: number, seconds: number, onReady?: () => void): Promise<IdleRun> {
  const { world, ipLog, daemon } = await startDaemon(p, provider, size, latencyMs, '');
  try {
    const pid = await until('daemon process', 10_000, () => programProcess(daemon.child.pid!, p.entry), 20);
    // Quiet first: the cycle's tail (documents written, timers armed) must not count as idle.
    let last = procStat(pid)?.cpuMs ?? 0;
    let quietSince = Date.now();
    await until('a quiet daemon', 20_000, () => {
      const now = procStat(pid)?.cpuMs ?? 0;
      if (now !== last) {
        last = now;
        quietSince = Date.now();
      }
      return Date.now() - quietSince >= 500 ? true : undefined;
    }, 50);
    onReady?.();
    const windowStart = Date.now();
    const cpu0 = procStat(pid)!.cpuMs;
    const status0 = procStatus(pid)!;
    const switches0 = contextSwitches(pid);
    const rss: number[] = [status0.rssKb];
    const end = windowStart + seconds * 1000;
    while (Date.now() < end) {
      await sleep(Math.min(1000, end - Date.now()));
      const status = procStatus(pid);
      if (!status) throw new Error(`daemon ${pid} went away: ${daemon.output()}`);
      rss.push(status.rssKb);
    }
    const windowMs = Date.now() - windowStart;
    const cpu1 = procStat(pid)!.cpuMs;
    const status1 = procStatus(pid)!;
    const switches1 = contextSwitches(pid);
    const monitor = ipChildren(pid).find((child) => child.argv.includes('monitor'));
    const requests = (await world.mock.log()).filter((entry) => entry.time >= windowStart && entry.time <= windowStart + windowMs);
    return {
      seconds: windowMs / 1000,
      pid,
      droppedPrivileges: pid !== daemon.child.pid,
      rssKb: status1.rssKb,
      rssAnonKb: status1.rssAnonKb,
      rssFileKb: status1.rssFileKb,
      rssMaxKb: Math.max(...rss),
      hwmKb: status1.hwmKb,
      cpuMs: cpu1 - cpu0,
      cpuPercent: ((cpu1 - cpu0) / windowMs) * 100,
      wakeupsPerSecond: (switches1 - switches0) / (windowMs / 1000),
      threads: status1.threads,
      requests: requests.length,
      ipProcesses: ipLog.calls(windowStart).filter((call) => call.start <= windowStart + windowMs).length,
      monitorRssKb: monitor?.rssKb ?? 0,
    };
  } finally {
    await daemon.stop();
    await world.destroy();
  }
}
