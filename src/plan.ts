// The planner (SPEC §5): from metadata, kernel state, config and the ownership record it
// computes the desired configuration and the changes that get the kernel there. It removes
// only what is provably ours: routes and rules with proto 149, addresses in state.json.
import type { Config } from './config.js';
import { matchesAny } from './config.js';
import {
  CLOUD_NETWORK_PROTO,
  RTN_LOCAL,
  SCOPE_GLOBAL,
  SCOPE_HOST,
  SCOPE_LINK,
  TABLE_LOCAL,
  TABLE_MAIN,
  type KernelLink,
  type KernelRoute,
  type KernelState,
} from './kernel.js';
import type { InstanceMetadata, InterfaceMetadata } from './model.js';
import { cidrText, networkOf } from './net.js';
import type { StateFile } from './state.js';

export interface Route {
  table: number;
  /** RTN_* number: 1 unicast, 2 local. */
  type: number;
  dst: string;
  dev: string;
  gateway?: string;
  prefsrc?: string;
  scope: number;
  onlink: boolean;
}

export interface Rule {
  priority: number;
  /** "a.b.c.d/32", or undefined for "from all". */
  src?: string;
  table: number;
  suppressPrefixLength?: number;
}

export interface Address {
  dev: string;
  /** "a.b.c.d/len" */
  cidr: string;
  noprefixroute: boolean;
}

export type Change =
  | { kind: 'link-up'; dev: string }
  | { kind: 'link-mtu'; dev: string; mtu: number }
  | { kind: 'address-add'; address: Address; mac: string }
  | { kind: 'route-replace'; route: Route }
  | { kind: 'rule-add'; rule: Rule }
  | { kind: 'rule-del'; rule: Rule }
  | { kind: 'route-del'; route: Route }
  | { kind: 'address-del'; address: Address; mac: string };

/** A metadata interface matched to the kernel link that carries its MAC. */
export interface ManagedInterface {
  metadata: InterfaceMetadata;
  link: KernelLink;
  table: number;
  policyRouted: boolean;
}

export interface Plan {
  managed: ManagedInterface[];
  changes: Change[];
  /** Things the operator should know about (unmatched MACs, foreign routes in our way). */
  notices: string[];
}

const ORDER: Change['kind'][] = [
  'link-up',
  'link-mtu',
  'address-add',
  'route-replace',
  'rule-add',
  'rule-del',
  'route-del',
  'address-del',
];

/** The kernel's identity of a route (table, destination; metric 0): `route replace` overwrites whatever holds it, whatever its type. */
const routeKey = (route: { table: number; dst: string }) => `${route.table} ${route.dst}`;
const routeText = (route: Route | KernelRoute) =>
  `${route.table} ${route.dst} ${route.type} ${route.dev} ${route.gateway} ${route.prefsrc} ${route.scope} ${route.onlink}`;
const ruleText = (rule: Rule) => `${rule.priority} ${rule.src ?? 'all'} ${rule.table} ${rule.suppressPrefixLength ?? '-'}`;

/** The link that carries `mac`: the first one without a master (bond/bridge ports and VFs never count). */
const linkOf = (kernel: KernelState, mac: string | undefined) =>
  mac === undefined ? undefined : kernel.links.find((link) => link.mac === mac && link.master === undefined);

/**
 * The links holding each global address, except copies left behind when the cloud moved an
 * address between two of our interfaces: ours or a /32, on an interface this plan manages whose
 * metadata no longer lists it. Such a copy does not block the move (an owned one is deleted by
 * the same plan). Ports (VFs, bridge or bond members) are part of their master's interface and
 * hold nothing of their own.
 */
function foreignAddressHolders(metadata: InstanceMetadata, kernel: KernelState, config: Config, state: StateFile): Map<string, KernelLink[]> {
  const links = new Map(kernel.links.map((link) => [link.index, link]));
  const listed = new Map(metadata.interfaces.map((nic) => [nic.mac, new Set(nic.addresses)]));
  const holders = new Map<string, KernelLink[]>();
  for (const a of kernel.addresses) {
    const link = links.get(a.ifindex);
    if (!link || link.master !== undefined || a.scope !== SCOPE_GLOBAL) continue;
    const ours = link.mac !== undefined && (state.owned[link.mac]?.addresses.includes(`${a.address}/${a.prefixLength}`) ?? false);
    const ownListing = link.mac === undefined ? undefined : listed.get(link.mac);
    // Left behind by a move: only on an interface this plan manages, which no longer lists it.
    const leftBehind = ownListing !== undefined && !ownListing.has(a.address) && !matchesAny(link.name, config.unmanaged);
    if (leftBehind && (ours || a.prefixLength === 32)) continue;
    holders.set(a.address, [...(holders.get(a.address) ?? []), link]);
  }
  return holders;
}

/** The main table's rule comes at 32766: a rule of ours after it would never be reached. */
const LAST_USABLE_PRIORITY = 32765;

/** Matches metadata interfaces to kernel links and sets aside the ones that must not be touched. */
function matchInterfaces(metadata: InstanceMetadata, kernel: KernelState, config: Config, state: StateFile, notices: string[]) {
  const managed: Omit<ManagedInterface, 'policyRouted'>[] = [];
  /** MACs whose configuration must stay exactly as it is (Unmanaged; the planner adds the uncertain ones). */
  const frozenMacs = new Set<string>();
  const foreignHolders = foreignAddressHolders(metadata, kernel, config, state);
  for (let nic of metadata.interfaces) {
    const link = linkOf(kernel, nic.mac);
    if (!link) {
      notices.push(`metadata interface ${nic.mac} has no network link on this machine; skipped`);
      continue;
    }
    if (matchesAny(link.name, config.unmanaged)) {
      frozenMacs.add(nic.mac);
      continue;
    }
    if (config.routeTableBase + 10000 + nic.key > LAST_USABLE_PRIORITY) {
      notices.push(`${link.name} (NIC key ${nic.key}) would need rule priority ${config.routeTableBase + 10000 + nic.key}, after the main table's 32766; lower RouteTableBase. Left as it is`);
      frozenMacs.add(nic.mac);
      continue;
    }
    // An address another link already holds (and not as ours) is that link's: adding it here,
    // with rules, would send its replies out of the wrong interface. It is left out.
    const onThisLink = new Set(kernel.addresses.filter((a) => a.ifindex === link.index).map((a) => a.address));
    const heldElsewhere = (address: string) =>
      onThisLink.has(address) ? undefined : foreignHolders.get(address)?.find((holder) => holder.index !== link.index)?.name;
    const taken = nic.addresses.filter((address) => heldElsewhere(address) !== undefined);
    for (const address of taken) notices.push(`${address} of ${link.name} (${nic.mac}) is already on ${heldElsewhere(address)}; not configured on ${link.name}`);
    if (taken.includes(nic.addresses[0]!)) {
      notices.push(`${link.name} (${nic.mac}) cannot be configured without its primary address; left as it is`);
      frozenMacs.add(nic.mac);
      continue;
    }
    if (taken.length > 0) nic = { ...nic, addresses: nic.addresses.filter((address) => !taken.includes(address)) };
    managed.push({ metadata: nic, link, table: config.routeTableBase + nic.key });
  }
  // An Unmanaged link freezes its MAC only if it is the link that MAC would configure: a VLAN or VF
  // that merely shares the MAC leaves the real interface managed.
  for (const link of kernel.links) {
    if (link.mac && linkOf(kernel, link.mac) === link && matchesAny(link.name, config.unmanaged)) frozenMacs.add(link.mac);
  }
  return { managed, frozenMacs };
}

function isPolicyRouted(name: string, managedCount: number, config: Config): boolean {
  if (config.supplementary.includes(name)) return true;
  if (config.policyRouting === 'yes') return true;
  return config.policyRouting === 'auto' && managedCount >= 2;
}

/**
 * @param uncertainSubnets subnets of interfaces whose metadata could not be read this time: the
 * routes other tables have to them stay, because the interface probably still exists.
 */
function desiredRoutes(nic: ManagedInterface, managed: ManagedInterface[], uncertainSubnets: string[]): Route[] {
  const { metadata, link, table } = nic;
  const dev = link.name;
  const routes: Route[] = [];
  const base = { table, type: 1, dev, onlink: false };
  if (metadata.linkRoute === 'subnet') {
    routes.push({ ...base, dst: cidrText(metadata.subnet), scope: SCOPE_LINK, prefsrc: metadata.addresses[0] });
  } else {
    routes.push({ ...base, dst: `${metadata.gateway}/32`, scope: SCOPE_LINK });
  }
  routes.push({ ...base, dst: '0.0.0.0/0', gateway: metadata.gateway, scope: SCOPE_GLOBAL, onlink: true });
  const own = cidrText(metadata.subnet);
  const others = new Set([...managed.map((other) => cidrText(other.metadata.subnet)), ...uncertainSubnets].filter((subnet) => subnet !== own));
  for (const subnet of [...others].sort()) {
    routes.push({ ...base, dst: subnet, gateway: metadata.gateway, scope: SCOPE_GLOBAL, onlink: true });
  }
  return routes;
}

function localRoutes(nic: ManagedInterface): Route[] {
  return nic.metadata.localRoutes.map((cidr) => ({
    table: TABLE_LOCAL,
    type: RTN_LOCAL,
    dst: cidr,
    dev: nic.link.name,
    scope: SCOPE_HOST,
    onlink: false,
  }));
}

/** Every source address that must be routed out of this interface. */
function sourceAddresses(nic: ManagedInterface, kernel: KernelState, config: Config): string[] {
  const sources = [...nic.metadata.addresses];
  if (config.supplementary.includes(nic.link.name)) {
    const onLink = kernel.addresses
      .filter((address) => address.ifindex === nic.link.index && address.scope === SCOPE_GLOBAL)
      .map((address) => address.address)
      .sort();
    for (const address of onLink) if (!sources.includes(address)) sources.push(address);
  }
  return sources;
}

function desiredRules(nic: ManagedInterface, kernel: KernelState, config: Config): Rule[] {
  const n = nic.metadata.key;
  return sourceAddresses(nic, kernel, config).flatMap((address) => [
    { priority: config.routeTableBase + n, src: `${address}/32`, table: nic.table, suppressPrefixLength: 0 },
    { priority: config.routeTableBase + 10000 + n, src: `${address}/32`, table: nic.table },
  ]);
}

/** Removes from `existing` one entry equal to each desired one; what is left over is surplus. */
function multisetDifference<T>(desired: T[], existing: T[], text: (item: T) => string) {
  const remaining = new Map<string, T[]>();
  for (const item of existing) {
    const key = text(item);
    const same = remaining.get(key);
    if (same) same.push(item);
    else remaining.set(key, [item]);
  }
  const missing: T[] = [];
  for (const item of desired) {
    const matches = remaining.get(text(item));
    if (matches && matches.length > 0) matches.pop();
    else missing.push(item);
  }
  return { missing, surplus: [...remaining.values()].flat() };
}

/** Route deletions in the order of additions: per table the link route, the default, other subnets; local routes last. */
function sortRoutesLikeAdditions(routes: KernelRoute[]): KernelRoute[] {
  const tableRank = (route: KernelRoute) => (route.table === TABLE_LOCAL ? Infinity : route.table);
  const kindRank = (route: KernelRoute) => (route.scope === SCOPE_LINK ? 0 : route.dst === '0.0.0.0/0' ? 1 : 2);
  return [...routes].sort((a, b) => tableRank(a) - tableRank(b) || kindRank(a) - kindRank(b) || a.dst.localeCompare(b.dst));
}

/** Deletions read like the additions that made them: per table, per address, suppress rule first, global rule last. */
function sortLikeAdditions(rules: Rule[]): Rule[] {
  const firstSeen = new Map<string, number>();
  rules.forEach((rule, index) => firstSeen.set(rule.src ?? '', firstSeen.get(rule.src ?? '') ?? index));
  const tableRank = (rule: Rule) => (rule.table === TABLE_MAIN ? Infinity : rule.table);
  return [...rules].sort(
    (a, b) => tableRank(a) - tableRank(b) || firstSeen.get(a.src ?? '')! - firstSeen.get(b.src ?? '')! || a.priority - b.priority,
  );
}

export function plan(metadata: InstanceMetadata, kernel: KernelState, config: Config, state: StateFile): Plan {
  const notices: string[] = [];
  const matched = matchInterfaces(metadata, kernel, config, state, notices);
  const { frozenMacs } = matched;
  // Interfaces whose metadata was unreadable this time. An entry rejected without a readable
  // MAC could be any interface: then every interface absent from the metadata is uncertain.
  const uncertainMacs = new Set(metadata.rejected.flatMap((entry) => (entry.mac ? [entry.mac] : [])));
  const anonymousRejection = metadata.rejected.some((entry) => !entry.mac || entry.ambiguous);
  const metadataMacs = new Set(metadata.interfaces.map((nic) => nic.mac));
  // Interfaces configured before: known from state.json, or from the proto 149 routes on their
  // links when that record is lost.
  const configuredDevs = new Set(kernel.routes.flatMap((route) => (route.protocol === CLOUD_NETWORK_PROTO && route.dev ? [route.dev] : [])));
  const configuredMacs = new Set([
    ...Object.keys(state.owned),
    ...kernel.links.flatMap((link) => (link.mac && configuredDevs.has(link.name) ? [link.mac] : [])),
  ]);
  for (const mac of configuredMacs) {
    if (metadataMacs.has(mac) || uncertainMacs.has(mac)) continue;
    if (anonymousRejection) {
      uncertainMacs.add(mac);
      continue;
    }
    // A detached interface takes its link with it. One whose link is still here but that the
    // metadata no longer lists is more likely a bad answer (a document without its first NIC)
    // than a change, and that interface may be the way in.
    const link = linkOf(kernel, mac);
    if (link) {
      notices.push(`${link.name} (${mac}) was configured by cloud-network but is missing from the metadata while its link is still here; left as it is`);
      uncertainMacs.add(mac);
    }
  }
  // Held-back interfaces still count for PolicyRouting = "auto": one unreadable entry must not
  // switch policy routing off for the others.
  const heldBack = kernel.links.filter(
    (link) => link.mac && uncertainMacs.has(link.mac) && link.master === undefined && !frozenMacs.has(link.mac),
  ).length;
  for (const mac of uncertainMacs) frozenMacs.add(mac);
  // What a frozen interface uses, from state.json and from the kernel itself (state.json may be
  // lost or older): its table (where its links' proto 149 routes are) and its subnets.
  const linksOf = (macs: Set<string>) => kernel.links.filter((link) => link.mac && macs.has(link.mac) && linkOf(kernel, link.mac) === link);
  const uncertainLinks = new Set(linksOf(uncertainMacs).map((link) => link.index));
  const uncertainSubnets = [
    ...[...uncertainMacs].flatMap((mac) => state.owned[mac]?.subnet ?? []),
    ...kernel.addresses
      .filter((address) => uncertainLinks.has(address.ifindex) && address.scope === SCOPE_GLOBAL && address.prefixLength < 32)
      .map((address) => cidrText({ network: networkOf(address.address, address.prefixLength), prefixLength: address.prefixLength })),
  ];
  // A table that belongs to a held-back interface is never written for another one: its rules
  // carry that interface's (DHCP) addresses, and rerouting them could cut the way in. Holding an
  // interface back freezes its own table in turn, hence the loop.
  let usable = matched.managed;
  let frozenTables: Set<number>;
  let frozenDevs: Set<string>;
  for (;;) {
    frozenDevs = new Set(linksOf(frozenMacs).map((link) => link.name));
    frozenTables = new Set([
      ...[...frozenMacs].flatMap((mac) => state.owned[mac]?.table ?? []),
      ...kernel.routes.filter((route) => route.protocol === CLOUD_NETWORK_PROTO && route.dev && frozenDevs.has(route.dev) && route.table !== TABLE_LOCAL).map((route) => route.table),
    ]);
    const clashing = usable.filter((nic) => frozenTables.has(nic.table));
    if (clashing.length === 0) break;
    for (const nic of clashing) {
      notices.push(`${nic.link.name} (${nic.metadata.mac}) would use table ${nic.table}, which belongs to an interface that is left as it is; held back`);
      frozenMacs.add(nic.metadata.mac);
    }
    usable = usable.filter((nic) => !clashing.includes(nic));
  }
  const managed: ManagedInterface[] = usable
    .sort((a, b) => a.metadata.key - b.metadata.key)
    .map((nic) => ({ ...nic, policyRouted: isPolicyRouted(nic.link.name, matched.managed.length + heldBack, config) }));

  const changes: Change[] = [];

  // Links and addresses.
  for (const nic of managed) {
    const dev = nic.link.name;
    if (!nic.link.up) changes.push({ kind: 'link-up', dev });
    if (nic.metadata.mtu !== undefined && nic.metadata.mtu !== nic.link.mtu) changes.push({ kind: 'link-mtu', dev, mtu: nic.metadata.mtu });
    const present = new Set(kernel.addresses.filter((a) => a.ifindex === nic.link.index).map((a) => a.address));
    nic.metadata.addresses.forEach((address, index) => {
      if (present.has(address)) return;
      const primary = index === 0;
      const cidr = `${address}/${primary ? nic.metadata.primaryPrefixLength : 32}`;
      changes.push({ kind: 'address-add', mac: nic.metadata.mac, address: { dev, cidr, noprefixroute: !primary } });
    });
  }
  const kernelAddresses = new Set(kernel.addresses.map((a) => `${a.ifindex} ${a.address}/${a.prefixLength}`));
  for (const [mac, owned] of Object.entries(state.owned)) {
    if (frozenMacs.has(mac)) continue;
    const link = kernel.links.find((candidate) => candidate.mac === mac && candidate.master === undefined);
    if (!link) continue;
    const wanted = new Set(managed.find((nic) => nic.metadata.mac === mac)?.metadata.addresses ?? []);
    // A link keeps at least one of the addresses it has now; new ones from this same answer do
    // not count, as the answer may be wrong. (GCP's DHCP address is a /32, which an older
    // state.json may still claim.)
    let remaining = kernel.addresses.filter((a) => a.ifindex === link.index && a.scope === SCOPE_GLOBAL).length;
    for (const cidr of owned.addresses) {
      const [address, prefix] = cidr.split('/');
      if (!kernelAddresses.has(`${link.index} ${cidr}`) || wanted.has(address!)) continue;
      // Secondaries are added as /32: a longer-lived prefix is a primary (recorded by an older
      // version), the way into the machine on the first interface. With promote_secondaries off
      // its deletion would also take every other address of its subnet along.
      if (Number(prefix) < 32) {
        notices.push(`${cidr} on ${link.name} left the metadata but is kept: a primary address is never deleted`);
        continue;
      }
      if (remaining <= 1) {
        notices.push(`${cidr} on ${link.name} left the metadata but is kept: it is the link's last address`);
        continue;
      }
      remaining--;
      changes.push({ kind: 'address-del', mac, address: { dev: link.name, cidr, noprefixroute: false } });
    }
  }

  // Routes: ours are the proto 149 ones; a foreign route holding the key we need is left alone.
  const policyRouted = managed.filter((nic) => nic.policyRouted);
  const wantedRoutes = [...policyRouted.flatMap((nic) => desiredRoutes(nic, managed, uncertainSubnets)), ...managed.flatMap(localRoutes)];
  const ours = (route: KernelRoute) => route.protocol === CLOUD_NETWORK_PROTO;
  const foreignKeys = new Set(kernel.routes.filter((route) => !ours(route) && route.metric === 0).map(routeKey));
  const routesToSet = wantedRoutes.filter((route) => {
    if (!foreignKeys.has(routeKey(route))) return true;
    notices.push(`table ${route.table} already has a route to ${route.dst} that cloud-network does not own; left as it is`);
    return false;
  });
  const existingOurRoutes = kernel.routes.filter(ours);
  const existingRouteTexts = new Set(existingOurRoutes.map(routeText));
  for (const route of routesToSet) {
    if (!existingRouteTexts.has(routeText(route))) changes.push({ kind: 'route-replace', route });
  }
  const wantedRouteKeys = new Set(wantedRoutes.map(routeKey));
  const unwantedRoutes = existingOurRoutes.filter(
    (route) => !wantedRouteKeys.has(routeKey(route)) && !frozenTables.has(route.table) && !(route.dev !== undefined && frozenDevs.has(route.dev)),
  );
  for (const route of sortRoutesLikeAdditions(unwantedRoutes)) changes.push({ kind: 'route-del', route: { ...route, dev: route.dev ?? '' } });

  // Rules.
  const wantedRules: Rule[] = policyRouted.flatMap((nic) => desiredRules(nic, kernel, config));
  const existingOurRules: Rule[] = kernel.rules.flatMap(({ priority, src, table, suppressPrefixLength, protocol, hasOtherSelectors }) =>
    protocol === CLOUD_NETWORK_PROTO && !hasOtherSelectors && table !== undefined ? [{ priority, src, table, suppressPrefixLength }] : [],
  );
  if (policyRouted.length > 0) {
    wantedRules.push({ priority: config.routeTableBase + 9999, table: TABLE_MAIN, suppressPrefixLength: 0 });
  }
  // The main table's rule also serves the rules of held-back interfaces: while they stay, so does it.
  const keepMainRule = existingOurRules.some((rule) => frozenTables.has(rule.table));
  const ruleDiff = multisetDifference(wantedRules, existingOurRules, ruleText);
  for (const rule of ruleDiff.missing) changes.push({ kind: 'rule-add', rule });
  for (const rule of sortLikeAdditions(ruleDiff.surplus.filter((rule) => !frozenTables.has(rule.table) && !(keepMainRule && rule.table === TABLE_MAIN)))) {
    changes.push({ kind: 'rule-del', rule });
  }

  for (const entry of metadata.rejected) {
    const name = kernel.links.find((link) => link.mac === entry.mac && link.master === undefined)?.name;
    const which = entry.mac ? ` ${entry.mac}${name ? ` (${name})` : ''}` : '';
    notices.push(`metadata entry${which} skipped, its configuration left as it is: ${entry.reason}`);
  }
  const rank = (change: Change) => ORDER.indexOf(change.kind);
  // Stable sort: within a kind, changes keep interface (NIC key) order.
  changes.sort((a, b) => rank(a) - rank(b));
  return { managed, changes, notices };
}
