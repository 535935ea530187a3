// The end-to-end test world: a VM network namespace whose links carry the metadata's MACs, a
// peer "cloud" namespace that plays the subnet gateways, and a mock IMDS inside the VM
// namespace at http://127.0.0.1:PORT. Nothing here touches the host's own network.
//
//   VM namespace cnt-<pid>-<n>              cloud namespace cnc-<pid>-<n>
//     lo 127.0.0.1 (mock IMDS listens)        lo 198.51.100.7/32 (a "remote" host)
//     eth0 (NIC key order, metadata MAC) <->  c0  gateway/32, routes back to eth0's addresses
//     eth1 ...                           <->  c1  ...
//     vf0 (same MAC as eth0, master vfbr0) <-> cvf0   (option vf: Azure accelerated networking)
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { nicsOf, REPO_ROOT, type Fixture, type FixtureNic, type Provider } from './fixture.js';
import {
  exec as execIn,
  ip as ipIn,
  ipBatch,
  ipJson as ipJsonIn,
  kernelJson,
  monitor as monitorIn,
  routeGet as routeGetIn,
  run,
  snapshot as snapshotIn,
  type ExecOptions,
  type ExecResult,
  type KernelJson,
  type KernelSnapshot,
  type Monitor,
  type RouteGet,
} from './kernel.js';
import type { MockImdsOptions } from './mock-imds.js';
import { startMockImds, type MockImds } from './mock-imds-process.js';

export { exec, ip, ipJson, routeGet, monitor, snapshot, kernelJson } from './kernel.js';

/** Address of a host "behind" the gateways (on the cloud namespace's loopback). */
export const REMOTE = '198.51.100.7';

export interface WorldOptions {
  /** Metadata the mock serves and the links are built from. */
  fixture: Fixture;
  /**
   * Give eth0 its primary address (subnet prefix; GCP /32 plus a gateway route) and a main-table
   * default route via the gateway, as the distribution's DHCP client would. Default false.
   */
  dhcp?: boolean;
  /** Bring every VM-side link up (default: only eth0, and only with dhcp or foreign). */
  linksUp?: boolean;
  /** Add foreign (non-149) state that must survive every run: see World.foreign. */
  foreign?: boolean;
  /** NIC indexes that also get a "VF": a link with the same MAC enslaved to a bridge. */
  vf?: number[];
  /** Mock IMDS options; false = start no mock. */
  mock?: MockImdsOptions | false;
  /** Contents of the cloud-network.toml the program gets (default: empty file). */
  config?: string;
  /** RouteTableBase the program uses (only to place the foreign route in eth0's table). */
  routeTableBase?: number;
}

export interface WorldNic extends FixtureNic {
  /** VM-side link name, eth<index>. */
  name: string;
  /** Cloud-side peer link name. */
  peer: string;
}

/** Foreign state added with `foreign: true`, in the canonical form of KernelSnapshot. */
export interface ForeignState {
  address: string;
  rule: string;
  routes: string[];
}

export interface RunResult extends ExecResult {
  durationMs: number;
  timedOut: boolean;
}

export interface RunOptions {
  timeoutMs?: number;
}

/** Env overrides for the program: a value of undefined removes the variable. */
export type EnvOverrides = Record<string, string | undefined>;

// ---------------------------------------------------------------------------------------------
// Root check and leftovers

/**
 * Throws (never skips) when the tests cannot create namespaces: under CI=true a missing
 * privilege must fail the build, and locally a clear message beats a wall of `ip` errors.
 */
export function requireRoot(): void {
  if (process.getuid?.() === 0) return;
  const ci = process.env.CI === 'true' ? ' CI=true: end-to-end tests must run as root there.' : '';
  throw new Error(
    `end-to-end tests need root (they create network namespaces with \`ip netns\`); run e.g. \`sudo npx vitest run test/e2e\`.${ci}`,
  );
}

let swept = false;

/** Deletes cnt-/cnc- namespaces left by test processes that no longer exist. */
export function sweepStaleNamespaces(): void {
  const out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  for (const line of out.split('\n')) {
    const m = /^(cn[tc]-(\d+)-\d+)\b/.exec(line);
    if (!m || alive(Number(m[2]))) continue;
    try {
      execFileSync('ip', ['netns', 'del', m[1]!], { stdio: 'ignore' });
    } catch {
      // raced with another sweeper
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

// Namespaces and children still alive in this process, removed synchronously on exit so that
// even a crashed or interrupted test file leaves nothing behind.
const live = new Set<World>();
process.once('exit', () => {
  for (const w of live) w.destroySync();
});

let worldSeq = 0;

// ---------------------------------------------------------------------------------------------
// World

/** Builds the namespaces, links and mock for `o.fixture`. Call destroy() in finally/afterAll. */
export async function createWorld(o: WorldOptions): Promise<World> {
  requireRoot();
  if (!swept) {
    swept = true;
    sweepStaleNamespaces();
  }
  const n = worldSeq++;
  const world = new World(`cnt-${process.pid}-${n}`, `cnc-${process.pid}-${n}`, o);
  live.add(world);
  try {
    await world.build(o);
  } catch (e) {
    await world.destroy();
    throw e;
  }
  return world;
}

export class World {
  readonly provider: Provider;
  readonly nics: WorldNic[];
  /** Temp dir holding state/, dmi/, cloud-network.toml and the mock's control socket. */
  readonly dir: string;
  readonly stateDir: string;
  readonly configPath: string;
  readonly dmiDir: string;
  /** Set with `foreign: true`. */
  foreign?: ForeignState;
  private mockImds?: MockImds;
  private readonly children = new Set<ChildProcess>();
  private readonly monitors = new Set<Monitor>();
  private hotplugged = 0;
  private destroyed = false;

  constructor(
    /** The VM namespace (where the program runs). */
    readonly name: string,
    /** The peer namespace holding the gateways. */
    readonly cloud: string,
    o: WorldOptions,
  ) {
    this.provider = o.fixture.provider;
    this.nics = nicsOf(o.fixture).map((nic) => ({ ...nic, name: `eth${nic.index}`, peer: `c${nic.index}` }));
    this.dir = mkdtempSync(join(tmpdir(), 'cnt-'));
    // Traversable by the unprivileged user cloud-network runs as once it drops root (SPEC §8).
    chmodSync(this.dir, 0o755);
    this.stateDir = join(this.dir, 'state');
    this.dmiDir = join(this.dir, 'dmi');
    this.configPath = join(this.dir, 'cloud-network.toml');
    mkdirSync(this.stateDir);
    mkdirSync(this.dmiDir);
    writeFileSync(this.configPath, o.config ?? '');
  }

  /** @internal used by createWorld */
  async build(o: WorldOptions): Promise<void> {
    await run(['ip', 'netns', 'add', this.name]);
    await run(['ip', 'netns', 'add', this.cloud]);
    // No IPv6 duplicate address detection: it would finish ~1-2 s after a link comes up and
    // emit address/route events that look like writes to a monitor watching a later run.
    await this.exec(['sysctl', '-q', '-w', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0']);
    const vm: string[] = ['link set lo up'];
    const cloud: string[] = ['link set lo up', `address add ${REMOTE}/32 dev lo`];
    const routedSubnets = new Set<string>();
    for (const nic of this.nics) {
      vm.push(`link add ${nic.name} address ${nic.mac} type veth peer name ${nic.peer} netns ${this.cloud}`);
      cloud.push(...this.gatewaySide(nic.peer, nic.gateway, nic.addresses, nic.localRoutes, routedSubnets.has(nic.subnet) ? undefined : nic.subnet));
      routedSubnets.add(nic.subnet);
    }
    for (const i of o.vf ?? []) {
      const nic = this.nics[i];
      if (!nic) throw new Error(`vf: no NIC ${i}`);
      // The bridge gets its own MAC: by default it would copy its port's, making a second
      // master-less link with the NIC's MAC.
      vm.push(
        `link add vfbr${i} address 02:00:00:00:0f:${i.toString(16).padStart(2, '0')} type bridge`,
        `link add vf${i} address ${nic.mac} type veth peer name cvf${i} netns ${this.cloud}`,
        `link set vf${i} master vfbr${i}`,
        `link set vfbr${i} up`,
        `link set vf${i} up`,
      );
      cloud.push(`link set cvf${i} up`);
    }
    await ipBatch(this.name, vm);
    await ipBatch(this.cloud, cloud);

    const eth0 = this.nics[0];
    const setup: string[] = [];
    if (eth0 && (o.dhcp || o.foreign || o.linksUp)) setup.push(`link set ${eth0.name} up`);
    if (o.linksUp) for (const nic of this.nics.slice(1)) setup.push(`link set ${nic.name} up`);
    if (eth0 && o.dhcp) {
      const primary = eth0.addresses[0]!;
      setup.push(`address add ${primary}/${eth0.primaryPrefixLength} dev ${eth0.name}`);
      // GCP's DHCP hands out a /32: the gateway needs its own link route.
      if (eth0.primaryPrefixLength === 32) setup.push(`route add ${eth0.gateway} dev ${eth0.name} scope link proto dhcp src ${primary} metric 1024`);
      setup.push(`route add default via ${eth0.gateway} dev ${eth0.name} proto dhcp src ${primary} metric 1024`);
    }
    if (eth0 && o.foreign) {
      const table = (o.routeTableBase ?? 10000) + eth0.key;
      setup.push(
        `address add 192.0.2.10/32 dev ${eth0.name}`,
        'rule add priority 5000 from 192.0.2.10 lookup 300 proto static',
        `route add 203.0.113.0/24 dev ${eth0.name} proto static`,
        `route add 198.18.0.0/15 via ${eth0.gateway} dev ${eth0.name} onlink table ${table} proto static`,
        `route add local 192.0.2.99 dev ${eth0.name} table local proto 66`,
      );
      this.foreign = {
        address: `${eth0.name} 192.0.2.10/32`,
        rule: '5000: from 192.0.2.10 lookup 300 proto static',
        routes: [
          `table main 203.0.113.0/24 dev ${eth0.name} scope link proto static`,
          `table ${table} 198.18.0.0/15 via ${eth0.gateway} dev ${eth0.name} onlink proto static`,
          `table local local 192.0.2.99 dev ${eth0.name} proto 66`,
        ],
      };
    }
    await ipBatch(this.name, setup);

    if (o.mock !== false) {
      this.mockImds = await startMockImds({ fixture: o.fixture, options: o.mock ?? {}, netns: this.name, dir: this.dir });
    }
  }

  /** Cloud-side commands for one peer link: gateway address and routes back to the VM. */
  private gatewaySide(peer: string, gateway: string, addresses: string[], localRoutes: string[], subnet?: string): string[] {
    return [
      `link set ${peer} up`,
      // /32: several NICs may share a subnet (and so a gateway) without duplicate subnet routes.
      `address add ${gateway}/32 dev ${peer}`,
      ...(subnet ? [`route add ${subnet} dev ${peer}`] : []),
      ...addresses.map((a) => `route replace ${a}/32 dev ${peer}`),
      ...localRoutes.map((c) => `route replace ${c} dev ${peer}`),
    ];
  }

  /** The mock IMDS (throws if the world was built with mock: false). */
  get mock(): MockImds {
    if (!this.mockImds) throw new Error('this world has no mock IMDS');
    return this.mockImds;
  }

  /** CLOUD_NETWORK_ENDPOINT for the program inside the namespace. */
  get endpoint(): string {
    return this.mock.endpoint;
  }

  /** NIC by index or link name. */
  nic(which: number | string): WorldNic {
    const nic = typeof which === 'number' ? this.nics[which] : this.nics.find((x) => x.name === which);
    if (!nic) throw new Error(`no NIC ${which}`);
    return nic;
  }

  exec(cmd: string[], o?: ExecOptions): Promise<ExecResult> {
    return execIn(this.name, cmd, o);
  }
  /** `ip -n VM ARGS`. */
  ip(args: string[], o?: ExecOptions): Promise<ExecResult> {
    return ipIn(this.name, args, o);
  }
  ipJson<T = unknown[]>(args: string[]): Promise<T> {
    return ipJsonIn<T>(this.name, args);
  }
  routeGet(dst: string, from?: string): Promise<RouteGet> {
    return routeGetIn(this.name, dst, from);
  }
  snapshot(): Promise<KernelSnapshot> {
    return snapshotIn(this.name);
  }
  kernelJson(): Promise<KernelJson> {
    return kernelJson(this.name);
  }
  /** Watches the VM namespace; stopped by destroy() if the test does not. */
  async monitor(): Promise<Monitor> {
    const m = await monitorIn(this.name);
    this.monitors.add(m);
    const stop = m.stop;
    m.stop = async () => {
      this.monitors.delete(m);
      return stop();
    };
    return m;
  }

  writeConfig(toml: string): void {
    writeFileSync(this.configPath, toml);
  }

  /**
   * Hot-plugs a NIC: a new veth `eth<n>` carrying `mac`, link down, with a cloud-side gateway
   * when given. The test updates the mock's metadata itself. Returns the link name.
   */
  async hotplug(o: { mac: string; name?: string; gateway?: string; addresses?: string[]; subnet?: string }): Promise<string> {
    const index = this.nics.length + this.hotplugged++;
    const name = o.name ?? `eth${index}`;
    const peer = `c${index}`;
    await this.ip(['link', 'add', name, 'address', o.mac, 'type', 'veth', 'peer', 'name', peer, 'netns', this.cloud]);
    await ipBatch(this.cloud, o.gateway ? this.gatewaySide(peer, o.gateway, o.addresses ?? [], [], o.subnet) : [`link set ${peer} up`]);
    return name;
  }

  /** Removes a VM-side link (and its peer): hot-unplug. */
  async unplug(name: string): Promise<void> {
    await this.ip(['link', 'del', name]);
  }

  /** Environment the program gets: a clean env plus the CLOUD_NETWORK_* of this world. */
  env(overrides: EnvOverrides = {}): Record<string, string> {
    const env: Record<string, string | undefined> = {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      LANG: 'C.UTF-8',
      HOME: this.dir,
      CLOUD_NETWORK_PROVIDER: this.provider,
      ...(this.mockImds ? { CLOUD_NETWORK_ENDPOINT: this.mockImds.endpoint } : {}),
      CLOUD_NETWORK_STATE_DIR: this.stateDir,
      CLOUD_NETWORK_CONFIG: this.configPath,
      CLOUD_NETWORK_DMI_DIR: this.dmiDir,
      ...overrides,
    };
    return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
  }

  /** Spawns a long-running process in the VM namespace (a daemon); killed by destroy(). */
  spawn(argv: string[], env: Record<string, string>): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.name, ...argv], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** Deletes both namespaces, stops the mock, monitors and children, removes the temp dir. Idempotent. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const m of [...this.monitors]) await m.stop().catch(() => undefined);
    for (const c of this.children) c.kill('SIGKILL');
    await this.mockImds?.stop().catch(() => undefined);
    await run(['ip', 'netns', 'del', this.name], { check: false });
    await run(['ip', 'netns', 'del', this.cloud], { check: false });
    rmSync(this.dir, { recursive: true, force: true });
    live.delete(this);
  }

  /** @internal synchronous variant for the process 'exit' hook. */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const c of this.children) c.kill('SIGKILL');
    if (this.mockImds?.pid) {
      try {
        process.kill(this.mockImds.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const ns of [this.name, this.cloud]) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        // already gone
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Running the program

export const BIN = join(REPO_ROOT, 'bin/cloud-network');
export const DIST_CLI = join(REPO_ROOT, 'dist/cli/cloud-network.js');

function requireBuilt(): void {
  if (!existsSync(BIN) || !existsSync(DIST_CLI)) {
    throw new Error(`${BIN} or ${DIST_CLI} is missing: run \`npm run build\` first`);
  }
}

/**
 * Runs `ip netns exec VM <repo>/bin/cloud-network ARGS` with the world's CLOUD_NETWORK_*
 * environment (provider, endpoint, state dir, config, DMI dir) and returns its exit and output.
 * Never throws on a non-zero exit: tests assert on exitCode. `command` replaces bin/cloud-network
 * (the benchmark runs the packaged bundle this way).
 */
export async function runCloudNetwork(
  world: World,
  args: string[],
  env: EnvOverrides = {},
  o: RunOptions = {},
  command: string[] = [BIN],
): Promise<RunResult> {
  requireBuilt();
  const started = Date.now();
  const r = await execa('ip', ['netns', 'exec', world.name, ...command, ...args], {
    env: world.env(env),
    extendEnv: false,
    reject: false,
    timeout: o.timeoutMs ?? 120_000,
  });
  return {
    exitCode: r.exitCode ?? -1,
    stdout: String(r.stdout ?? ''),
    stderr: String(r.stderr ?? ''),
    durationMs: Date.now() - started,
    timedOut: r.timedOut,
  };
}

export interface Daemon {
  child: ChildProcess;
  /** stdout and stderr so far. */
  output(): string;
  /** Resolves when the output matches `re`. */
  waitForOutput(re: RegExp, timeoutMs?: number): Promise<string>;
  /** Sends `signal` (default SIGTERM) and resolves with the exit code (or signal name). */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

/** Starts `bin/cloud-network ARGS` (default: daemon mode) in the world, or `command` instead; killed by destroy(). */
export function startCloudNetwork(world: World, args: string[] = [], env: EnvOverrides = {}, command: string[] = [BIN]): Daemon {
  requireBuilt();
  const child = world.spawn([...command, ...args], world.env(env));
  let out = '';
  const listeners = new Set<() => void>();
  const onData = (d: Buffer): void => {
    out += d.toString('utf8');
    for (const l of [...listeners]) l();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | string>((r) => child.once('exit', (code, sig) => r(code ?? sig ?? -1)));
  return {
    child,
    output: () => out,
    waitForOutput(re, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const m = re.exec(out);
          if (!m) return;
          listeners.delete(check);
          clearTimeout(timer);
          resolve(m[0]);
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`cloud-network: no output matching ${re} within ${timeoutMs} ms; output:\n${out}`));
        }, timeoutMs);
        listeners.add(check);
        check();
      });
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Multi-line description of a run, for assertion messages. */
export function describeRun(r: RunResult): string {
  return `exit ${r.exitCode}${r.timedOut ? ' (timed out)' : ''} after ${r.durationMs} ms\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}
