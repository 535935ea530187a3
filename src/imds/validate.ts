// Validation shared by the providers: bodies are parsed here, at the edge, with a one-line
// reason for anything that is not what the service should have sent.
import type { InterfaceMetadata, RejectedInterface } from '../model.js';
import { cidrContains, firstHost, type Cidr } from '../net.js';
import { ImdsError } from './http.js';

/** Two entries with one MAC cannot both be right: neither is applied. */
export function rejectDuplicateMacs(interfaces: InterfaceMetadata[], rejected: RejectedInterface[]): InterfaceMetadata[] {
  const count = new Map<string, number>();
  for (const nic of interfaces) count.set(nic.mac, (count.get(nic.mac) ?? 0) + 1);
  for (const [mac, times] of count) {
    if (times > 1) rejected.push({ mac, ambiguous: true, reason: `MAC listed ${times} times in the metadata` });
  }
  return interfaces.filter((nic) => count.get(nic.mac) === 1);
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
  const interfaces = rejectDuplicateMacs(parsed, rejected);
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
