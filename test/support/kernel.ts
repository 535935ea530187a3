// Namespace-level primitives: run commands in a network namespace, read its kernel state in a
// canonical text form that makes assertion diffs readable, and watch it for writes.
import { spawn } from 'node:child_process';
import { execa } from 'execa';

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Throw on a non-zero exit (default true). */
  check?: boolean;
  input?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
}

/** Runs `cmd` inside namespace `ns` (`ip netns exec`); throws on failure unless check=false. */
export async function exec(ns: string, cmd: string[], o: ExecOptions = {}): Promise<ExecResult> {
  return run(['ip', 'netns', 'exec', ns, ...cmd], o);
}

/** Runs a command in the current (host) namespace. Used only for `ip netns`/`ip -n` calls. */
export async function run(argv: string[], o: ExecOptions = {}): Promise<ExecResult> {
  const r = await execa(argv[0]!, argv.slice(1), {
    reject: false,
    ...(o.input !== undefined ? { input: o.input } : {}),
    ...(o.env ? { env: o.env, extendEnv: false } : {}),
    ...(o.timeoutMs ? { timeout: o.timeoutMs } : {}),
  });
  const result = { exitCode: r.exitCode ?? -1, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
  if ((o.check ?? true) && result.exitCode !== 0) {
    throw new Error(`${argv.join(' ')} failed (${r.exitCode ?? r.signal}):\n${result.stderr}${result.stdout}`);
  }
  return result;
}

/** `ip -n NS ARGS...`; throws on failure. */
export async function ip(ns: string, args: string[], o: ExecOptions = {}): Promise<ExecResult> {
  return run(['ip', '-n', ns, ...args], o);
}

/** Runs an `ip -batch` script in `ns` (one command per line); throws naming the failing line. */
export async function ipBatch(ns: string, lines: string[]): Promise<void> {
  if (lines.length === 0) return;
  await run(['ip', '-n', ns, '-batch', '-'], { input: `${lines.join('\n')}\n` });
}

/** `ip -n NS -j ARGS...` parsed. Pass `-N` etc. in args as needed. */
export async function ipJson<T = unknown[]>(ns: string, args: string[]): Promise<T> {
  const r = await ip(ns, ['-j', ...args]);
  return JSON.parse(r.stdout || '[]') as T;
}

export interface RouteGet {
  dev: string;
  /** Undefined for a directly connected destination. */
  gateway?: string;
  prefsrc?: string;
}

/** `ip route get DST from FROM` in `ns`: which device and gateway a packet would leave by. */
export async function routeGet(ns: string, dst: string, from?: string): Promise<RouteGet> {
  const r = await ipJson<{ dev: string; gateway?: string; prefsrc?: string }[]>(ns, ['route', 'get', dst, ...(from ? ['from', from] : [])]);
  const first = r[0];
  if (!first) throw new Error(`ip route get ${dst} from ${from}: no answer`);
  return { dev: first.dev, ...(first.gateway ? { gateway: first.gateway } : {}), ...(first.prefsrc ? { prefsrc: first.prefsrc } : {}) };
}

// ---------------------------------------------------------------------------------------------
// Raw and canonical kernel state

/** The four arrays of kernel.json (notes/CONTEXT.md): link, address, rule, route (IPv4, numeric). */
export interface KernelJson {
  links: IpLink[];
  addresses: IpAddrLink[];
  rules: IpRule[];
  routes: IpRoute[];
}

export interface IpLink {
  ifindex: number;
  ifname: string;
  flags: string[];
  mtu: number;
  operstate?: string;
  address?: string;
  master?: string;
  [k: string]: unknown;
}
export interface IpAddrLink {
  ifindex: number;
  ifname: string;
  addr_info: { family: string; local: string; prefixlen: number; scope: string; noprefixroute?: boolean; [k: string]: unknown }[];
  [k: string]: unknown;
}
export interface IpRule {
  priority: number;
  src: string;
  srclen?: number;
  dst?: string;
  dstlen?: number;
  table?: string;
  suppress_prefixlen?: number;
  protocol?: string;
  iif?: string;
  oif?: string;
  fwmark?: string;
  action?: string;
  [k: string]: unknown;
}
export interface IpRoute {
  type?: string;
  dst: string;
  gateway?: string;
  dev?: string;
  table?: string;
  protocol?: string;
  scope?: string;
  prefsrc?: string;
  metric?: number;
  flags?: string[];
  [k: string]: unknown;
}

/** Same command as the fixture recorder: `ip -4 -N -j -batch -` with four show commands. */
export async function kernelJson(ns: string): Promise<KernelJson> {
  const r = await run(['ip', '-n', ns, '-4', '-N', '-j', '-batch', '-'], {
    input: 'link show\naddress show\nrule show\nroute show table all\n',
  });
  const [links, addresses, rules, routes] = r.stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as unknown[]);
  return { links: links as IpLink[], addresses: addresses as IpAddrLink[], rules: rules as IpRule[], routes: routes as IpRoute[] };
}

const TABLES: Record<string, string> = { '255': 'local', '254': 'main', '253': 'default' };
const PROTOS: Record<string, string> = { '2': 'kernel', '3': 'boot', '4': 'static', '16': 'dhcp' };
const ROUTE_TYPES: Record<string, string> = { '2': 'local', '3': 'broadcast', '4': 'anycast', '5': 'multicast', '6': 'blackhole', '7': 'unreachable', '8': 'prohibit', '9': 'throw' };

const tableName = (t: string | undefined): string => TABLES[t ?? '254'] ?? t ?? 'main';
const protoName = (p: string): string => PROTOS[p] ?? p;

/**
 * One rule as text, close to `ip rule` syntax:
 * "10000: from 172.31.44.13 lookup 10000 suppress_prefixlength 0 proto 149".
 */
export function ruleKey(r: IpRule): string {
  const parts = [`${r.priority}:`, 'from', r.src === 'all' ? 'all' : r.srclen !== undefined && r.srclen !== 32 ? `${r.src}/${r.srclen}` : r.src];
  if (r.dst !== undefined && r.dst !== 'all') parts.push('to', r.dstlen !== undefined && r.dstlen !== 32 ? `${r.dst}/${r.dstlen}` : r.dst);
  if (r.fwmark !== undefined) parts.push('fwmark', r.fwmark);
  if (r.iif !== undefined) parts.push('iif', r.iif);
  if (r.oif !== undefined) parts.push('oif', r.oif);
  if (r.table !== undefined) parts.push('lookup', tableName(r.table));
  else if (r.action !== undefined) parts.push(r.action);
  if (r.suppress_prefixlen !== undefined) parts.push('suppress_prefixlength', String(r.suppress_prefixlen));
  if (r.protocol !== undefined) parts.push('proto', protoName(r.protocol));
  return parts.join(' ');
}

/**
 * One route as text: "table 10000 default via 172.31.32.1 dev eth0 onlink proto 149",
 * "table local local 10.0.0.128/28 dev eth0 proto 149". Scope is shown only for unicast
 * routes that are not global; metric only when set.
 */
export function routeKey(r: IpRoute): string {
  const type = ROUTE_TYPES[r.type ?? '1'];
  const parts = [`table ${tableName(r.table)}`];
  if (type) parts.push(type);
  parts.push(r.dst);
  if (r.gateway) parts.push('via', r.gateway);
  if (r.dev) parts.push('dev', r.dev);
  if (!type && r.scope === '253') parts.push('scope link');
  if (!type && r.scope === '254') parts.push('scope host');
  if (r.prefsrc) parts.push('src', r.prefsrc);
  if (r.metric !== undefined) parts.push('metric', String(r.metric));
  if (r.flags?.includes('onlink')) parts.push('onlink');
  if (r.protocol !== undefined) parts.push('proto', protoName(r.protocol));
  return parts.join(' ');
}

/** Canonical, sorted view of a namespace's IPv4 state. */
export interface KernelSnapshot {
  /** "eth0 up mtu 1500 0a:07:84:3d:6e:38 [master br0]" */
  links: string[];
  /** "eth0 172.31.44.13/20", "eth0 172.31.45.70/32 noprefixroute" (global scope only). */
  addresses: string[];
  rules: string[];
  routes: string[];
}

export function canonical(k: KernelJson): KernelSnapshot {
  return {
    links: k.links
      .map((l) => `${l.ifname} ${l.flags.includes('UP') ? 'up' : 'down'} mtu ${l.mtu} ${l.address ?? ''}${l.master ? ` master ${l.master}` : ''}`)
      .sort(),
    addresses: k.addresses
      .flatMap((l) =>
        l.addr_info
          .filter((a) => a.family === 'inet' && (a.scope === 'global' || a.scope === '0')) // -N prints scopes as numbers
          .map((a) => `${l.ifname} ${a.local}/${a.prefixlen}${a.noprefixroute ? ' noprefixroute' : ''}`),
      )
      .sort(),
    rules: k.rules.map(ruleKey).sort(),
    routes: k.routes.map(routeKey).sort(),
  };
}

/** Canonical snapshot of `ns` (see KernelSnapshot). */
export async function snapshot(ns: string): Promise<KernelSnapshot> {
  return canonical(await kernelJson(ns));
}

/** Only what carries proto 149 (routes and rules this program owns). */
export function owned(s: KernelSnapshot): { rules: string[]; routes: string[] } {
  return { rules: s.rules.filter((r) => r.endsWith(' proto 149')), routes: s.routes.filter((r) => r.endsWith(' proto 149')) };
}

// ---------------------------------------------------------------------------------------------
// Monitor: proves that a run wrote nothing (or waits for a kernel event) without sleeping.

let markerSeq = 0;

export interface Monitor {
  /** Kernel events seen since start, excluding the monitor's own markers. */
  lines(): string[];
  /** Resolves with the first line matching `re` (already seen or future). */
  waitFor(re: RegExp, timeoutMs?: number): Promise<string>;
  /** Flushes pending events (via a marker), stops, and returns every line seen since start. */
  stop(): Promise<string[]>;
}

/**
 * Starts `ip -o monitor link address rule route` in `ns` and resolves once it is subscribed.
 * Readiness and flushing use a marker rule (priority 31000+n from 192.0.2.254): it is added
 * and deleted around the observed window, never inside it.
 */
/**
 * Waits until the kernel has finished reacting to earlier link changes. Carrier and admin state
 * reach operstate through linkwatch, which runs at most once a second for all namespaces, and
 * IPv6 then gives an up link its link-local address: both arrive as events up to ~1 s after the
 * change that caused them, and would look like writes to a monitor started in between.
 */
export async function settle(ns: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pending = await unsettledLinks(ns);
    if (pending.length === 0) return;
    if (Date.now() > deadline) throw new Error(`links in ${ns} did not settle within ${timeoutMs} ms: ${pending.join('; ')}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Links whose operstate or IPv6 link-local address has yet to follow their flags, with why. */
export async function unsettledLinks(ns: string): Promise<string[]> {
  const [links, addrs, localRoutes] = await Promise.all([
    ipJson<IpLink[]>(ns, ['link', 'show']),
    ipJson<{ ifname: string; addr_info: { local: string; tentative?: boolean }[] }[]>(ns, ['-6', 'address', 'show', 'scope', 'link']),
    ipJson<{ dst: string; dev?: string }[]>(ns, ['-6', 'route', 'show', 'table', 'local', 'type', 'local']),
  ]);
  const pending: string[] = [];
  for (const l of links) {
    if (l.ifname === 'lo' || l.operstate === 'UNKNOWN') continue;
    const carrier = l.flags.includes('UP') && l.flags.includes('LOWER_UP');
    const operUp = l.operstate === 'UP' && !l.flags.includes('NO-CARRIER');
    if (carrier !== operUp) {
      pending.push(`${l.ifname} operstate ${l.operstate} with flags ${l.flags.join(',')}`);
      continue;
    }
    // The kernel gives no link-local address below IPv6's minimum MTU.
    if (!operUp || l.mtu < 1280) continue;
    const linkLocal = addrs.find((a) => a.ifname === l.ifname)?.addr_info.find((a) => a.local.startsWith('fe80:') && !a.tentative);
    if (!linkLocal) pending.push(`${l.ifname} has no IPv6 link-local address yet`);
    else if (!localRoutes.some((r) => r.dst === linkLocal.local && r.dev === l.ifname)) pending.push(`${l.ifname} has no local route for ${linkLocal.local} yet`);
  }
  return pending;
}

/** Watches `ns` for kernel events, from once earlier link changes have settled (see settle). */
export async function monitor(ns: string): Promise<Monitor> {
  const child = spawn('ip', ['-n', ns, '-o', 'monitor', 'link', 'address', 'rule', 'route'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const all: string[] = [];
  let buffer = '';
  let stderr = '';
  const listeners = new Set<() => void>();
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    buffer += d;
    const parts = buffer.split('\n');
    buffer = parts.pop() ?? '';
    all.push(...parts.filter((l) => l.trim() !== ''));
    for (const l of [...listeners]) l();
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));

  const waitLine = (pred: (l: string) => boolean, timeoutMs: number, what: string, from = 0): Promise<number> =>
    new Promise((resolve, reject) => {
      const check = (): boolean => {
        const i = all.findIndex((l, n) => n >= from && pred(l));
        if (i < 0) return false;
        listeners.delete(onData);
        clearTimeout(timer);
        resolve(i);
        return true;
      };
      const onData = (): void => void check();
      const timer = setTimeout(() => {
        listeners.delete(onData);
        reject(new Error(`ip monitor in ${ns}: no ${what} within ${timeoutMs} ms (stderr: ${stderr})`));
      }, timeoutMs);
      if (!check()) listeners.add(onData);
    });

  // A marker rule is added until the monitor reports it: only then is it surely subscribed.
  const marker = async (): Promise<number> => {
    const prio = 31000 + (markerSeq++ % 900);
    const re = new RegExp(`^Deleted ${prio}:\\s+from 192\\.0\\.2\\.254 `);
    for (let attempt = 0; ; attempt++) {
      await ip(ns, ['rule', 'add', 'priority', String(prio), 'from', '192.0.2.254', 'lookup', String(prio)]);
      await ip(ns, ['rule', 'del', 'priority', String(prio)]);
      try {
        return await waitLine((l) => re.test(l), attempt < 20 ? 100 : 5000, `marker ${prio}`);
      } catch (e) {
        if (attempt >= 20) throw e;
      }
    }
  };
  const isMarker = (l: string): boolean => /^(Deleted )?31\d{3}:\s+from 192\.0\.2\.254 lookup 31\d{3}/.test(l);

  await settle(ns);
  const startIndex = (await marker()) + 1;
  const seen = (): string[] => all.slice(startIndex).filter((l) => !isMarker(l));
  let stopped: string[] | undefined;
  return {
    lines: seen,
    waitFor: async (re, timeoutMs = 10_000) => all[await waitLine((l) => !isMarker(l) && re.test(l), timeoutMs, `line matching ${re}`, startIndex)]!,
    async stop() {
      if (stopped) return stopped;
      const end = await marker();
      stopped = all.slice(startIndex, end).filter((l) => !isMarker(l));
      child.kill('SIGTERM');
      await exited;
      return stopped;
    },
  };
}
