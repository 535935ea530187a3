// Validation shared by the providers: bodies are parsed here, at the edge, with a one-line
// reason for anything that is not what the service should have sent.
import type { InterfaceMetadata, RejectedInterface } from '../model.js';
import { addressNumber, cidrContains, cidrText, firstHost, isHostOf, neverAssignedReason, parseIPv4Cidr, spanContains, spanOf, SUBNET_PREFIX_RANGE, type Cidr, type Span } from '../net.js';
import { ImdsError } from './http.js';

/**
 * The main table's suppress rule sits at RouteTableBase + 9999: an interface with a larger NIC
 * key would get rules after it (SPEC §5).
 */
const MAX_NIC_KEY = 9998;

interface LocalRange {
  cidr: Cidr;
  span: Span;
}

/** Why applying `nic` could cut the machine off although every field parsed, or undefined. */
function unsafeReason(nic: InterfaceMetadata, localRanges: Map<string, LocalRange>): string | undefined {
  if (nic.key > MAX_NIC_KEY) return `NIC key ${nic.key} is above ${MAX_NIC_KEY}`;
  for (const address of nic.addresses) {
    const reserved = neverAssignedReason({ network: address, prefixLength: 32 });
    if (reserved) return `address ${address} is ${reserved}, never an interface's`;
    if (address === nic.gateway) return `address ${address} is the gateway`;
  }
  if (!isHostOf(nic.subnet, nic.addresses[0]!)) return `primary address ${nic.addresses[0]} is not a host of subnet ${cidrText(nic.subnet)}`;
  if (!isHostOf(nic.subnet, nic.gateway)) return `gateway ${nic.gateway} is not a host of subnet ${cidrText(nic.subnet)}`;
  for (const text of nic.localRoutes) {
    const { cidr, span } = localRanges.get(text)!;
    if (cidr.prefixLength < SUBNET_PREFIX_RANGE[0]) return `local range ${text} is wider than /${SUBNET_PREFIX_RANGE[0]}`;
    const reserved = neverAssignedReason(cidr);
    if (reserved) return `local range ${text} overlaps ${reserved}`;
    if (spanContains(span, nic.gateway)) return `local range ${text} contains the gateway ${nic.gateway}`;
  }
  return undefined;
}

/**
 * Checks that go beyond one field: addresses and ranges that would cut the machine off, and
 * entries that contradict each other. Two entries with one MAC, or one address, cannot both be
 * right: neither is applied. Rejected interfaces are left exactly as they are.
 */
export function checkInterfaces(interfaces: InterfaceMetadata[], rejected: RejectedInterface[]): InterfaceMetadata[] {
  // Parsed once: a GCP instance can carry hundreds of alias ranges and forwarded IPs.
  const localRanges = new Map<string, LocalRange>();
  for (const text of interfaces.flatMap((nic) => nic.localRoutes)) {
    const cidr = parseIPv4Cidr(text)!;
    localRanges.set(text, { cidr, span: spanOf(cidr) });
  }
  const reasons = new Map<InterfaceMetadata, string>();
  for (const nic of interfaces) {
    const reason = unsafeReason(nic, localRanges);
    if (reason) reasons.set(nic, reason);
  }
  const macCount = new Map<string, number>();
  for (const nic of interfaces) macCount.set(nic.mac, (macCount.get(nic.mac) ?? 0) + 1);
  for (const [mac, times] of macCount) {
    if (times > 1) rejected.push({ mac, ambiguous: true, reason: `MAC listed ${times} times in the metadata` });
  }
  const gateways = interfaces.map((nic) => ({ nic, gateway: addressNumber(nic.gateway) }));
  for (const nic of interfaces) {
    for (const other of interfaces) {
      if (other === nic || reasons.has(nic)) continue;
      const shared = nic.addresses.find((address) => other.addresses.includes(address));
      if (shared) reasons.set(nic, `address ${shared} is also listed for interface ${other.mac}`);
      if (nic.addresses.includes(other.gateway)) reasons.set(nic, `address ${other.gateway} is the gateway of interface ${other.mac}`);
    }
    if (reasons.has(nic)) continue;
    for (const text of nic.localRoutes) {
      const { span } = localRanges.get(text)!;
      const covered = gateways.find(({ nic: other, gateway }) => other !== nic && gateway >= span.first && gateway <= span.last);
      if (covered) reasons.set(nic, `local range ${text} contains the gateway of interface ${covered.nic.mac}`);
    }
  }
  for (const [nic, reason] of reasons) if (macCount.get(nic.mac) === 1) rejected.push({ mac: nic.mac, reason });
  return interfaces.filter((nic) => macCount.get(nic.mac) === 1 && !reasons.has(nic));
}

/** Parses a JSON document body, with a one-line reason when it is not one. */
export function parseJsonDocument(body: string, what: string): Record<string, unknown> {
  let document: unknown;
  try {
    document = JSON.parse(body);
  } catch {
    const start = body.trimStart().slice(0, 1);
    const kind = body.trim() === '' ? 'an empty body' : start === '<' ? 'HTML' : 'a body that is not complete JSON';
    throw new ImdsError(`${what} is ${kind}`);
  }
  if (typeof document !== 'object' || document === null || Array.isArray(document)) throw new ImdsError(`${what} is not a JSON object`);
  return document as Record<string, unknown>;
}

type Json = Record<string, unknown>;
export const asObject = (value: unknown): Json | undefined =>
  typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Json) : undefined;
export const asArray = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);

/**
 * Parses a JSON list of interfaces whose position is the NIC key (Azure, GCP). Bad entries are
 * rejected one by one; a list with no usable entry at all is not trusted.
 */
export function parseInterfaceList(
  entries: unknown[],
  parse: (entry: Json, key: number) => InterfaceMetadata | RejectedInterface,
  what: string,
): { interfaces: InterfaceMetadata[]; rejected: RejectedInterface[] } {
  const rejected: RejectedInterface[] = [];
  const parsed: InterfaceMetadata[] = [];
  entries.forEach((entry, key) => {
    const result = parse(asObject(entry) ?? {}, key);
    if ('reason' in result) rejected.push(result);
    else parsed.push(result);
  });
  const interfaces = checkInterfaces(parsed, rejected);
  if (interfaces.length === 0) {
    throw new ImdsError(`${what} has no usable network interface: ${rejected.map((r) => r.reason).join('; ') || 'the list is empty'}`);
  }
  return { interfaces, rejected };
}

/** An interface of a cloud that routes through the subnet's first host (EC2, Azure); a reason when it cannot be one. */
export function subnetInterface(mac: string, key: number, addresses: string[], subnet: Cidr): InterfaceMetadata | string {
  if (addresses.length === 0) return 'no private IPv4 address';
  // The primary is the source of the subnet route; secondaries may come from other ranges.
  if (!cidrContains(subnet, addresses[0]!)) return `primary address ${addresses[0]} is not in subnet ${subnet.network}/${subnet.prefixLength}`;
  return { mac, key, addresses, primaryPrefixLength: subnet.prefixLength, subnet, gateway: firstHost(subnet), linkRoute: 'subnet', localRoutes: [] };
}
