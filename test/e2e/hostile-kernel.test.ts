// Issue 6, a hostile kernel side: `ip` missing or without CAP_NET_ADMIN, batch lines the kernel
// refuses, a crash in the middle of an apply, an address that expires under us, and a network
// manager that flushes every rule and table route while the daemon runs. Real binary, namespace
// world; nothing owned or foreign may be lost, the fault is reported, and the program recovers.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { execa } from 'execa';
import { describe, test, type ExpectStatic } from 'vitest';
import { withoutSecondary } from '../support/expected.js';
import { checkConfigured, checkRouteGet, snapshotDelta } from '../support/assertions.js';
import { expectedState } from '../support/expected.js';
import { loadFixture } from '../support/fixture.js';
import { owned } from '../support/kernel.js';
import { BIN, createWorld, describeRun, runCloudNetwork, startCloudNetwork, type EnvOverrides, type RunResult, type World } from '../support/world.js';

const BASE = 10000;
const GLOBAL_RULE_PRIORITY = String(BASE + 9999);
const FIXTURE = 'ec2/three-enis';

// ---------------------------------------------------------------------------------------------
// Local helpers

const nonEmpty = (text: string): string[] => text.split('\n').filter((line) => line.trim() !== '');
const errorLines = (text: string): string[] => nonEmpty(text).filter((line) => line.startsWith('error:'));

async function vm(): Promise<World> {
  return createWorld({ fixture: loadFixture(FIXTURE), dhcp: true, foreign: true });
}

async function runOk(world: World, expect: ExpectStatic, env: EnvOverrides = {}): Promise<RunResult> {
  const r = await runCloudNetwork(world, ['--once'], env);
  expect(r.exitCode, describeRun(r)).toBe(0);
  expect(errorLines(r.stderr), describeRun(r)).toEqual([]);
  return r;
}

/** The real `ip`, found on the test's PATH. */
function realIp(): string {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter)) {
    if (existsSync(join(dir, 'ip'))) return join(dir, 'ip');
  }
  throw new Error('ip is not on PATH');
}

interface StateJson {
  owned: Record<string, { addresses: string[]; table?: number }>;
  lastError?: string;
  applied?: { addresses: number; routes: number; rules: number };
}
const readStateJson = (dir: string): StateJson => JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as StateJson;

/**
 * Runs `ip netns exec VM [...wrapper] BIN ARGS` with the world's environment plus `env`, starting
 * `ip` by its absolute path so that `env.PATH` applies to the program only.
 */
async function runIn(world: World, wrapper: string[], args: string[], env: EnvOverrides = {}): Promise<RunResult> {
  const started = Date.now();
  const r = await execa(realIp(), ['netns', 'exec', world.name, ...wrapper, BIN, ...args], { env: world.env(env), extendEnv: false, reject: false, timeout: 60_000 });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr), durationMs: Date.now() - started, timedOut: r.timedOut };
}

const lastSeq = async (world: World): Promise<number> => Math.max(0, ...(await world.mock.log()).map((e) => e.seq));

/** A world converged by a daemon; resolves when the kernel holds the full SPEC §5 state. */
async function daemonWorld(expect: ExpectStatic) {
  const world = await vm();
  const daemon = startCloudNetwork(world);
  try {
    await expect.poll(() => checkConfigured(world), { timeout: 20_000, interval: 200 }).toEqual([]);
  } catch (e) {
    await world.destroy();
    throw new Error(`${(e as Error).message}\ndaemon output:\n${daemon.output()}`);
  }
  return { world, daemon };
}

/** Lines of the crashed apply that never ran: the last rule additions. */
const UNAPPLIED = 5;

/**
 * `ip` replacement for the crash test: reads and queries pass through; the apply
 * (`ip -force -batch -`) runs its script but the last UNAPPLIED lines, then writes its pid and
 * waits to be killed, like an apply cut short by `kill -9` of the whole service.
 */
function halfApplyingIp(dir: string): string {
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  const script = join(bin, 'ip');
  writeFileSync(
    script,
    [
      '#!/bin/sh',
      'if [ "$1" = "-force" ] && [ "$2" = "-batch" ]; then',
      `  cat > "${dir}/script"`,
      `  n=$(wc -l < "${dir}/script")`,
      `  head -n $((n - ${UNAPPLIED})) "${dir}/script" | ${realIp()} -force -batch -`,
      `  echo $$ > "${dir}/stuck.pid"`,
      '  exec sleep 120',
      'fi',
      `exec ${realIp()} "$@"`,
      '',
    ].join('\n'),
  );
  chmodSync(script, 0o755);
  return bin;
}

/** A world whose first --once was killed (-9) in the middle of its apply, plus the killed run's script. */
async function crashedMidApply(expect: ExpectStatic): Promise<{ world: World; script: string[]; dir: string }> {
  const world = await vm();
  const dir = mkdtempSync(join(tmpdir(), 'cnh-crash-'));
  let stuck: number | undefined;
  try {
    const bin = halfApplyingIp(dir);
    const run = startCloudNetwork(world, ['--once'], { PATH: `${bin}${delimiter}${world.env().PATH}` });
    await expect.poll(() => existsSync(join(dir, 'stuck.pid')), { timeout: 20_000, interval: 50 }).toBe(true);
    stuck = Number(readFileSync(join(dir, 'stuck.pid'), 'utf8').trim());
    expect(await run.stop('SIGKILL')).toBe('SIGKILL');
    process.kill(stuck, 'SIGKILL');
    const script = nonEmpty(readFileSync(join(dir, 'script'), 'utf8'));
    // Really mid-apply: addresses, routes and most rules are in, the last rules are not.
    expect(script.slice(-UNAPPLIED).every((line) => line.startsWith('rule add '))).toBe(true);
    const snap = await world.snapshot();
    expect(snap.addresses).toContain(`eth1 ${world.nic(1).addresses[2]}/32 noprefixroute`);
    expect(owned(snap).rules).toHaveLength(expectedState(world.nics).rules.length - UNAPPLIED);
    expect(existsSync(join(world.stateDir, 'lock')), 'the killed run left its lock').toBe(true);
    return { world, script, dir };
  } catch (e) {
    if (stuck) process.kill(stuck, 'SIGKILL');
    await world.destroy();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------

describe.concurrent('hostile kernel side (--once)', () => {
  test('ip missing from PATH: exit 1, one line, nothing changed, next run converges', async ({ expect }) => {
    const world = await vm();
    const dir = mkdtempSync(join(tmpdir(), 'cnh-noip-'));
    try {
      await runOk(world, expect);
      const converged = await world.snapshot();
      await world.ip(['rule', 'del', 'priority', GLOBAL_RULE_PRIORITY]);
      const drifted = await world.snapshot();
      // A PATH with node and nothing else.
      symlinkSync(process.execPath, join(dir, 'node'));
      const mon = await world.monitor();
      const r = await runIn(world, [], ['--once'], { PATH: dir });
      expect(await mon.stop()).toEqual([]);
      expect(r.exitCode, describeRun(r)).toBe(1);
      expect(errorLines(r.stderr), describeRun(r)).toEqual(['error: cannot run ip: not found in PATH; install iproute2']);
      expect(await world.snapshot()).toEqual(drifted);
      await runOk(world, expect);
      expect(await world.snapshot()).toEqual(converged);
    } finally {
      await world.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('ip without permission (no CAP_NET_ADMIN): exit 1, one line, nothing changed, state.json kept, next run converges', async ({ expect }) => {
    const world = await vm();
    // State dir and config that user nobody can use, so that the only thing missing is the capability.
    const dir = mkdtempSync(join(tmpdir(), 'cnh-noperm-'));
    try {
      chmodSync(dir, 0o755);
      const stateDir = join(dir, 'state');
      const config = join(dir, 'cloud-network.toml');
      mkdirSync(stateDir);
      writeFileSync(config, '', { mode: 0o644 });
      const env = { CLOUD_NETWORK_STATE_DIR: stateDir, CLOUD_NETWORK_CONFIG: config };
      await runOk(world, expect, env);
      const converged = await world.snapshot();
      const ownedBefore = readStateJson(stateDir).owned;
      await execa('chown', ['-R', 'nobody:nogroup', stateDir]);
      // Drift, and metadata that really drops an address: neither may be acted on without the capability.
      await world.ip(['rule', 'del', 'priority', GLOBAL_RULE_PRIORITY]);
      const drop = withoutSecondary(1, (addresses) => addresses[2]!, BASE)(await world.mock.fixture(), world.nics);
      await world.mock.setFixture(drop.fixture);
      const drifted = await world.snapshot();

      const mon = await world.monitor();
      const nobody = ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all'];
      const r = await runIn(world, nobody, ['--once'], env);
      expect(await mon.stop()).toEqual([]);
      expect(r.exitCode, describeRun(r)).toBe(1);
      expect(errorLines(r.stderr), describeRun(r)).toEqual([expect.stringMatching(/CAP_NET_ADMIN/)]);
      expect(await world.snapshot()).toEqual(drifted);
      expect(readStateJson(stateDir).owned, 'state.json still matches the kernel').toEqual(ownedBefore);

      await runOk(world, expect, env);
      expect(snapshotDelta(converged, await world.snapshot())).toEqual({ added: [], removed: drop.removed });
    } finally {
      await world.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // Linux lets one address sit on two interfaces, so "already on another interface" does not
  // fail a line; a gateway that is a local address of the VM does: the kernel refuses every
  // route via it ("Nexthop has invalid gateway").
  test('some batch lines fail (gateway is a local address) and an address is already on another interface: the rest applied, each fault reported, state.json matches the kernel', async ({ expect }) => {
    const world = await vm();
    try {
      const [eth0, eth1, eth2] = [world.nic(0), world.nic(1), world.nic(2)];
      // eth1's secondary, also put on eth0 by another tool with its subnet's prefix (a /32 there
      // that eth0's metadata does not list would be a stale copy of ours, which does not block).
      const shared = eth1.addresses[1]!;
      const sharedOnEth0 = `${shared}/${eth0.primaryPrefixLength}`;
      await world.ip(['address', 'add', `${eth0.gateway}/32`, 'dev', 'eth0']);
      await world.ip(['address', 'add', sharedOnEth0, 'dev', 'eth0']);
      const r = await runCloudNetwork(world, ['--once']);
      expect(r.exitCode, describeRun(r)).toBe(1);

      const refused = [eth0, eth1].flatMap((nic) => [
        `route replace default via ${nic.gateway} dev ${nic.name} table ${BASE + nic.key} proto 149 onlink`,
        `route replace ${eth2.subnet} via ${nic.gateway} dev ${nic.name} table ${BASE + nic.key} proto 149 onlink`,
      ]);
      expect(errorLines(r.stderr).sort(), describeRun(r)).toEqual(
        [
          ...refused.map((line) => `error: ip could not apply "${line}": Error: Nexthop has invalid gateway.`),
          expect.stringMatching(/^error: 4 of \d+ changes failed; see the lines above$/),
        ].sort(),
      );

      // The shared address is left to eth0, in one warning: no copy on eth1, no rules sending its replies out of eth1.
      const sharedRule = (rule: string) => rule.includes(`from ${shared}`);
      expect(nonEmpty(r.stderr).filter((line) => line.includes(shared)), describeRun(r)).toEqual([
        `warning: ${shared} of eth1 (${eth1.mac}) is already on eth0; not configured on eth1`,
      ]);
      // Everything else is in place.
      const want = expectedState(world.nics);
      const snap = await world.snapshot();
      expect(snap.addresses).toEqual(expect.arrayContaining(want.addresses.filter((address) => address !== `eth1 ${shared}/32 noprefixroute`)));
      expect(snap.addresses).toContain(`eth0 ${sharedOnEth0}`);
      expect(snap.addresses.filter((address) => address.startsWith(`eth1 ${shared}/`))).toEqual([]);
      const refusedRoutes = [eth0, eth1].flatMap((nic) => [
        `table ${BASE + nic.key} default via ${nic.gateway} dev ${nic.name} onlink proto 149`,
        `table ${BASE + nic.key} ${eth2.subnet} via ${nic.gateway} dev ${nic.name} onlink proto 149`,
      ]);
      expect(owned(snap)).toEqual({ rules: want.rules.filter((rule) => !sharedRule(rule)), routes: want.routes.filter((route) => !refusedRoutes.includes(route)) });

      // state.json records what is really there, and only what cloud-network added (primaries are put back, never owned).
      const state = readStateJson(world.stateDir);
      const ownedAddresses = Object.fromEntries(Object.entries(state.owned).map(([mac, entry]) => [mac, [...entry.addresses].sort()]));
      expect(ownedAddresses).toEqual({
        [eth0.mac]: [`${eth0.addresses[1]}/32`],
        [eth1.mac]: eth1.addresses.slice(1).filter((a) => a !== shared).map((a) => `${a}/32`).sort(),
        [eth2.mac]: [`${eth2.addresses[1]}/32`],
      });
      expect(state.applied).toEqual({ addresses: 3, rules: owned(snap).rules.length, routes: owned(snap).routes.length });
      expect(state.lastError).toMatch(/^4 change\(s\) failed, first: route replace default via /);

      // The faults end (the gateway address and eth0's copy go): the next run converges completely.
      await world.ip(['address', 'del', `${eth0.gateway}/32`, 'dev', 'eth0']);
      await world.ip(['address', 'del', sharedOnEth0, 'dev', 'eth0']);
      await runOk(world, expect);
      expect(await checkConfigured(world)).toEqual([]);
    } finally {
      await world.destroy();
    }
  });

  test('kill -9 during an apply, then a restart: converges, no duplicate rule, stale lock taken over', async ({ expect }) => {
    const { world, script, dir } = await crashedMidApply(expect);
    try {
      expect(script.length).toBeGreaterThan(UNAPPLIED);
      const mon = await world.monitor();
      await runOk(world, expect);
      const writes = await mon.stop();
      expect(await checkConfigured(world)).toEqual([]);
      const snap = await world.snapshot();
      expect(snap.rules.length, 'no rule twice').toBe(new Set(snap.rules).size);
      expect(snap.routes.length, 'no route twice').toBe(new Set(snap.routes).size);
      // The restart added exactly the rules the crash left out, and wrote nothing else.
      expect(writes, 'kernel events of the restart').toHaveLength(UNAPPLIED);
      expect(writes.every((line) => /^\d+:\s+from .* proto 149$/.test(line)), writes.join('\n')).toBe(true);
      expect(existsSync(join(world.stateDir, 'lock')), 'lock released').toBe(false);
    } finally {
      await world.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('kill -9 during an apply, then a restart: the addresses the killed run added are still owned (removed when the metadata drops them)', async ({ expect }) => {
    const { world, dir } = await crashedMidApply(expect);
    try {
      await runOk(world, expect);
      expect(await checkConfigured(world)).toEqual([]);
      const converged = await world.snapshot();
      const drop = withoutSecondary(1, (addresses) => addresses[2]!, BASE)(await world.mock.fixture(), world.nics);
      await world.mock.setFixture(drop.fixture);
      await runOk(world, expect);
      expect(snapshotDelta(converged, await world.snapshot())).toEqual({ added: [], removed: drop.removed });
    } finally {
      await world.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.concurrent('hostile kernel side (daemon)', () => {
  test('an address with a finite lifetime left by another tool: when it expires the daemon puts it back for good without owning it, no IMDS request', async ({ expect }) => {
    const { world, daemon } = await daemonWorld(expect);
    try {
      const eth0 = world.nic(0);
      const primary = `${eth0.addresses[0]}/${eth0.primaryPrefixLength}`;
      const seq = await lastSeq(world);
      const mon = await world.monitor();
      // A DHCP client that renewed with a 2 s lease, then died.
      await world.ip(['address', 'change', primary, 'dev', 'eth0', 'valid_lft', '2', 'preferred_lft', '2']);
      await mon.waitFor(new RegExp(`^Deleted \\d+: eth0\\s+inet ${primary.replace(/\./g, '\\.')} `), 10_000);
      await mon.stop();
      await expect.poll(() => checkConfigured(world), { timeout: 5_000, interval: 100 }).toEqual([]);
      const [info] = await world.ipJson<{ addr_info: { family: string; local: string; valid_life_time: number }[] }[]>(['-4', 'address', 'show', 'dev', 'eth0']);
      const back = info!.addr_info.find((a) => a.local === eth0.addresses[0]);
      expect(back?.valid_life_time, 'the address is back with an infinite lifetime').toBe(4294967295);
      expect(readStateJson(world.stateDir).owned[eth0.mac]?.addresses ?? [], 'a primary is put back, never owned: never deleted').not.toContain(primary);
      expect(await world.mock.log(seq), 'IMDS requests while repairing').toEqual([]);
      expect(errorLines(daemon.output()), daemon.output()).toEqual([]);
      expect(await daemon.stop()).toBe(0);
    } finally {
      await world.destroy();
    }
  });

  test('networkd-style flush of all rules and table routes while the daemon runs: restored within seconds, no IMDS request', async ({ expect }) => {
    const { world, daemon } = await daemonWorld(expect);
    try {
      const converged = owned(await world.snapshot());
      const seq = await lastSeq(world);
      const k = await world.kernelJson();
      const keep = new Set([0, 32766, 32767]);
      const tables = new Set(k.routes.map((r) => r.table ?? '254').filter((t) => !['254', '255', '253'].includes(t)));
      const flush = [
        ...k.rules.filter((r) => !keep.has(r.priority)).map((r) => `rule del priority ${r.priority}`),
        ...[...tables].map((t) => `route flush table ${t}`),
      ];
      await world.exec(['ip', '-batch', '-'], { input: `${flush.join('\n')}\n` });
      const flushed = await world.snapshot();
      expect(owned(flushed), 'the flush took everything').toEqual({ rules: [], routes: [] });

      const started = Date.now();
      await expect.poll(async () => owned(await world.snapshot()), { timeout: 5_000, interval: 50 }).toEqual(converged);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(await checkRouteGet(world)).toEqual([]);
      // Only what is owned comes back: the foreign rule the flush removed stays gone.
      expect((await world.snapshot()).rules).not.toContain(world.foreign!.rule);
      expect(await world.mock.log(seq), 'IMDS requests while restoring').toEqual([]);
      expect(errorLines(daemon.output()), daemon.output()).toEqual([]);
      expect(await daemon.stop()).toBe(0);
    } finally {
      await world.destroy();
    }
  });
});
