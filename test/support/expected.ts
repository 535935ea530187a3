// What SPEC §5 says the kernel must hold after a reconcile, written in the canonical forms of
// kernel.ts (ruleKey/routeKey/KernelSnapshot.addresses) so that tests compare plain strings.
import { withoutAddress, type Fixture } from './fixture.js';
import type { WorldNic } from './world.js';

export interface ExpectedOptions {
  /** RouteTableBase (default 10000). */
  base?: number;
  /** Policy routing on (default: PolicyRouting=auto, i.e. >= 2 managed interfaces). */
  policyRouting?: boolean;
}

export interface Expected {
  /** "eth0 172.31.44.13/20", "eth0 172.31.45.70/32 noprefixroute" (primary: prefix; others /32). */
  addresses: string[];
  /** proto 149 rules, sorted. */
  rules: string[];
  /** proto 149 routes (all tables), sorted. */
  routes: string[];
}

/** Strip /32: ip prints a host route as a bare address. */
function hostForm(cidr: string): string {
  return cidr.endsWith('/32') ? cidr.slice(0, -3) : cidr;
}

/**
 * Expected state for `nics` (all managed). The primary's prefix is the subnet's (GCP 32); when
 * DHCP already put the primary there, it carries no noprefixroute either, so it matches.
 */
export function expectedState(nics: WorldNic[], o: ExpectedOptions = {}): Expected {
  const base = o.base ?? 10000;
  const policy = o.policyRouting ?? nics.length >= 2;
  const addresses: string[] = [];
  const rules: string[] = [];
  const routes: string[] = [];
  for (const nic of nics) {
    const [primary, ...others] = nic.addresses;
    if (primary) addresses.push(`${nic.name} ${primary}/${nic.primaryPrefixLength}`);
    for (const a of others) addresses.push(`${nic.name} ${a}/32 noprefixroute`);
    for (const c of nic.localRoutes) routes.push(`table local local ${hostForm(c)} dev ${nic.name} proto 149`);
    if (!policy || !primary) continue;
    const t = base + nic.key;
    const gcp = nic.primaryPrefixLength === 32;
    routes.push(
      gcp
        ? `table ${t} ${nic.gateway} dev ${nic.name} scope link proto 149`
        : `table ${t} ${nic.subnet} dev ${nic.name} scope link src ${primary} proto 149`,
      `table ${t} default via ${nic.gateway} dev ${nic.name} onlink proto 149`,
    );
    const otherSubnets = new Set(nics.filter((x) => x !== nic && x.subnet !== nic.subnet).map((x) => x.subnet));
    for (const s of [...otherSubnets].sort()) routes.push(`table ${t} ${s} via ${nic.gateway} dev ${nic.name} onlink proto 149`);
    for (const a of nic.addresses) {
      rules.push(`${base + nic.key}: from ${a} lookup ${t} suppress_prefixlength 0 proto 149`);
      rules.push(`${base + 10000 + nic.key}: from ${a} lookup ${t} proto 149`);
    }
  }
  if (policy && nics.length > 0) rules.push(`${base + 9999}: from all lookup main suppress_prefixlength 0 proto 149`);
  return { addresses: addresses.sort(), rules: rules.sort(), routes: routes.sort() };
}

/**
 * The `ip -batch` lines (notes/CONTEXT.md syntax) that take a fresh world to expectedState():
 * a reference for SPEC §5, used to check that the expectations are reachable with the
 * documented commands. `present` lists addresses already on links ("eth0 172.31.44.13/20").
 */
export function referenceBatch(nics: WorldNic[], o: ExpectedOptions & { present?: string[] } = {}): string[] {
  const base = o.base ?? 10000;
  const policy = o.policyRouting ?? nics.length >= 2;
  const has = (nic: WorldNic, ip: string): boolean => (o.present ?? []).some((p) => p.startsWith(`${nic.name} ${ip}/`));
  const links: string[] = [];
  const addrs: string[] = [];
  const routes: string[] = [];
  const locals: string[] = [];
  const rules: string[] = [];
  for (const nic of nics) {
    links.push(`link set dev ${nic.name} up`);
    if (nic.mtu !== undefined) links.push(`link set dev ${nic.name} mtu ${nic.mtu}`);
    const [primary, ...others] = nic.addresses;
    if (primary && !has(nic, primary)) addrs.push(`address add ${primary}/${nic.primaryPrefixLength} dev ${nic.name}`);
    for (const a of others) if (!has(nic, a)) addrs.push(`address add ${a}/32 dev ${nic.name} noprefixroute`);
    for (const c of nic.localRoutes) locals.push(`route replace local ${hostForm(c)} dev ${nic.name} table local proto 149`);
    if (!policy || !primary) continue;
    const t = base + nic.key;
    routes.push(
      nic.primaryPrefixLength === 32
        ? `route replace ${nic.gateway} dev ${nic.name} scope link table ${t} proto 149`
        : `route replace ${nic.subnet} dev ${nic.name} scope link src ${primary} table ${t} proto 149`,
      `route replace default via ${nic.gateway} dev ${nic.name} table ${t} proto 149 onlink`,
    );
    const otherSubnets = new Set(nics.filter((x) => x !== nic && x.subnet !== nic.subnet).map((x) => x.subnet));
    for (const s of [...otherSubnets].sort()) routes.push(`route replace ${s} via ${nic.gateway} dev ${nic.name} table ${t} proto 149 onlink`);
    for (const a of nic.addresses) {
      rules.push(`rule add priority ${base + nic.key} from ${a} lookup ${t} suppress_prefixlength 0 proto 149`);
      rules.push(`rule add priority ${base + 10000 + nic.key} from ${a} lookup ${t} proto 149`);
    }
  }
  if (policy && nics.length > 0) rules.push(`rule add priority ${base + 9999} lookup main suppress_prefixlength 0 proto 149`);
  return [...links, ...addrs, ...routes, ...locals, ...rules];
}

/**
 * `fixture` without NIC `nics[index]`'s address `pick(addresses)` (a secondary), and what must
 * disappear with it: the address and its two rules, in the canonical forms of KernelSnapshot.
 */
export function withoutSecondary(index: number, pick: (addresses: string[]) => string, base = 10000) {
  return (fixture: Fixture, nics: WorldNic[]) => {
    const nic = nics[index]!;
    const address = pick(nic.addresses);
    const table = base + nic.key;
    return {
      fixture: withoutAddress(fixture, nic.mac, address),
      removed: [
        `address ${nic.name} ${address}/32 noprefixroute`,
        `rule ${base + nic.key}: from ${address} lookup ${table} suppress_prefixlength 0 proto 149`,
        `rule ${base + 10000 + nic.key}: from ${address} lookup ${table} proto 149`,
      ].sort(),
    };
  };
}
