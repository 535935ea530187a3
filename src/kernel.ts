// Kernel state: one `ip -4 -N -j -batch -` process reads links, addresses, rules and
// routes of all tables; the JSON is parsed here into the few fields the planner needs.
// Numeric output (-N) keeps the parse independent of /etc/iproute2 name files.
import { runIp } from './ip.js';
import { normalizeMac } from './net.js';

export const CLOUD_NETWORK_PROTO = 149;
export const TABLE_MAIN = 254;
export const TABLE_LOCAL = 255;
export const RTN_LOCAL = 2;
export const SCOPE_GLOBAL = 0;
export const SCOPE_LINK = 253;
export const SCOPE_HOST = 254;

export interface KernelLink {
  index: number;
  name: string;
  mac?: string;
  up: boolean;
  mtu: number;
  /** Set for bond/bridge ports and SR-IOV VFs enslaved to their netvsc device. */
  master?: string;
}

export interface KernelAddress {
  ifindex: number;
  address: string;
  prefixLength: number;
  scope: number;
}

export interface KernelRule {
  priority: number;
  /** "a.b.c.d/len", or undefined for "from all". */
  src?: string;
  table?: number;
  suppressPrefixLength?: number;
  protocol: number;
  /** Any selector besides from/lookup/suppress (iif, fwmark, ...): never one of ours. */
  hasOtherSelectors: boolean;
}

export interface KernelRoute {
  table: number;
  /** RTN_* number: 1 unicast, 2 local, ... */
  type: number;
  /** Always "a.b.c.d/len". */
  dst: string;
  dev?: string;
  gateway?: string;
  prefsrc?: string;
  scope: number;
  protocol: number;
  metric: number;
  onlink: boolean;
}

export interface KernelState {
  links: KernelLink[];
  addresses: KernelAddress[];
  rules: KernelRule[];
  routes: KernelRoute[];
}

/** The raw `ip -j` arrays, as stored in fixtures' kernel.json. */
export interface RawKernelSnapshot {
  links: unknown[];
  addresses: unknown[];
  rules: unknown[];
  routes: unknown[];
}

export const KERNEL_READ_SCRIPT = 'link show\naddress show\nrule show\nroute show table all\n';

export async function readKernelSnapshot(): Promise<RawKernelSnapshot> {
  const stdout = await runIp(['-4', '-N', '-j', '-batch', '-'], KERNEL_READ_SCRIPT);
  const arrays = stdout
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as unknown);
  if (arrays.length !== 4 || !arrays.every(Array.isArray)) {
    throw new Error(`unexpected output from ip -j: ${arrays.length} JSON documents instead of 4`);
  }
  const [links, addresses, rules, routes] = arrays as unknown[][];
  return { links: links!, addresses: addresses!, rules: rules!, routes: routes! };
}

export async function readKernelState(): Promise<KernelState> {
  return parseKernelSnapshot(await readKernelSnapshot());
}

type Json = Record<string, unknown>;

const num = (value: unknown, fallback: number): number =>
  value === undefined || value === null || value === '' ? fallback : Number(value);
const str = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

function withPrefix(dst: string, len?: unknown): string {
  if (dst === 'default') return '0.0.0.0/0';
  if (dst.includes('/')) return dst;
  return `${dst}/${num(len, 32)}`;
}

export function parseKernelSnapshot(raw: RawKernelSnapshot): KernelState {
  const links = (raw.links as Json[]).map(
    (link): KernelLink => ({
      index: num(link.ifindex, 0),
      name: String(link.ifname),
      mac: normalizeMac(str(link.address) ?? ''),
      up: Array.isArray(link.flags) && link.flags.includes('UP'),
      mtu: num(link.mtu, 0),
      master: str(link.master),
    }),
  );
  const addresses = (raw.addresses as Json[]).flatMap((link) =>
    ((link.addr_info as Json[] | undefined) ?? [])
      .filter((info) => info.family === 'inet')
      .map(
        (info): KernelAddress => ({
          ifindex: num(link.ifindex, 0),
          address: String(info.local),
          prefixLength: num(info.prefixlen, 32),
          scope: num(info.scope, SCOPE_GLOBAL),
        }),
      ),
  );
  const ruleKeys = new Set(['priority', 'src', 'srclen', 'table', 'suppress_prefixlen', 'protocol']);
  const rules = (raw.rules as Json[]).map(
    (rule): KernelRule => ({
      priority: num(rule.priority, 0),
      src: rule.src === undefined || rule.src === 'all' ? undefined : withPrefix(String(rule.src), rule.srclen),
      table: rule.table === undefined ? undefined : Number(rule.table),
      suppressPrefixLength: rule.suppress_prefixlen === undefined ? undefined : Number(rule.suppress_prefixlen),
      protocol: num(rule.protocol, 0),
      hasOtherSelectors: Object.keys(rule).some((key) => !ruleKeys.has(key)),
    }),
  );
  const routes = (raw.routes as Json[]).map(
    (route): KernelRoute => ({
      table: num(route.table, TABLE_MAIN),
      type: num(route.type, 1),
      dst: withPrefix(String(route.dst)),
      dev: str(route.dev),
      gateway: str(route.gateway),
      prefsrc: str(route.prefsrc),
      scope: num(route.scope, SCOPE_GLOBAL),
      protocol: num(route.protocol, 0),
      metric: num(route.metric, 0),
      onlink: Array.isArray(route.flags) && route.flags.includes('onlink'),
    }),
  );
  return { links, addresses, rules, routes };
}
