// IPv4 and MAC arithmetic on validated strings. ipaddr.js does the parsing so that
// odd forms ("010.1.1.1", "1.2.3") are rejected instead of guessed.
import ipaddr from 'ipaddr.js';

/** Returns the canonical dotted form of a plain IPv4 address, or undefined when `text` is not one. */
export function parseIPv4(text: string): string | undefined {
  const trimmed = text.trim();
  if (!ipaddr.IPv4.isValidFourPartDecimal(trimmed)) return undefined;
  return ipaddr.IPv4.parse(trimmed).toString();
}

export interface Cidr {
  /** Network address, host bits cleared. */
  network: string;
  prefixLength: number;
}

export function cidrText(cidr: Cidr): string {
  return `${cidr.network}/${cidr.prefixLength}`;
}

/**
 * Bounds for a cloud subnet's prefix. A /1 "subnet" would put a route to half the internet on
 * the link; above /30 there is no room for the cloud's router and the VM.
 */
export const SUBNET_PREFIX_RANGE = [8, 30] as const;

export function isPlausibleSubnet(cidr: Cidr): boolean {
  return cidr.prefixLength >= SUBNET_PREFIX_RANGE[0] && cidr.prefixLength <= SUBNET_PREFIX_RANGE[1];
}

/** Parses "a.b.c.d/n" into its network (host bits cleared); undefined when invalid. */
export function parseIPv4Cidr(text: string): Cidr | undefined {
  const [address, prefix, ...rest] = text.trim().split('/');
  if (address === undefined || prefix === undefined || rest.length > 0) return undefined;
  const prefixLength = parsePrefixLength(prefix);
  const ip = parseIPv4(address);
  if (prefixLength === undefined || ip === undefined) return undefined;
  return { network: networkOf(ip, prefixLength), prefixLength };
}

export function parsePrefixLength(text: string): number | undefined {
  if (!/^\d{1,2}$/.test(text.trim())) return undefined;
  const value = Number(text);
  return value <= 32 ? value : undefined;
}

/** Prefix length of a dotted netmask such as 255.255.240.0; undefined for non-contiguous masks. */
export function prefixFromNetmask(mask: string): number | undefined {
  const ip = parseIPv4(mask);
  if (ip === undefined) return undefined;
  return ipaddr.IPv4.parse(ip).prefixLengthFromSubnetMask() ?? undefined;
}

/** `ip` is already a validated dotted quad (parsed at the edge): plain arithmetic, no re-parse. */
function toInt(ip: string): number {
  return ip.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

function fromInt(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

export function networkOf(ip: string, prefixLength: number): string {
  const size = 2 ** (32 - prefixLength);
  return fromInt(Math.floor(toInt(ip) / size) * size);
}

/** The cloud's subnet router: the first host address (x.x.x.1 in a /24). */
export function firstHost(cidr: Cidr): string {
  return fromInt(toInt(cidr.network) + 1);
}

export function cidrContains(cidr: Cidr, ip: string): boolean {
  return networkOf(ip, cidr.prefixLength) === cidr.network;
}

/**
 * Normalizes a MAC to lower case with colons. Accepts colons, dashes or no separators
 * (Azure sends 000D3AE799B7); undefined when it is not 6 octets of hex.
 */
export function normalizeMac(text: string): string | undefined {
  const hex = text.trim().toLowerCase().replace(/[:-]/g, '');
  if (!/^[0-9a-f]{12}$/.test(hex)) return undefined;
  return hex.match(/../g)!.join(':');
}

/** A local-route destination from metadata: a CIDR, or a plain address meaning /32. */
export function parseIPv4Range(text: string): string | undefined {
  const cidr = parseIPv4Cidr(text.includes('/') ? text : `${text}/32`);
  return cidr ? cidrText(cidr) : undefined;
}

/** First and last address of a CIDR as numbers: range checks without string work (they run per alias range). */
export interface Span {
  first: number;
  last: number;
}

export function spanOf(cidr: Cidr): Span {
  const first = toInt(cidr.network);
  return { first, last: first + 2 ** (32 - cidr.prefixLength) - 1 };
}

/** An IPv4 address as a number, for comparisons against spans. */
export function addressNumber(ip: string): number {
  return toInt(ip);
}

export function spanContains(span: Span, ip: string): boolean {
  const value = toInt(ip);
  return value >= span.first && value <= span.last;
}

/**
 * Ranges no cloud assigns to a VM's interface: "this network", loopback, link-local (where the
 * metadata service itself lives), multicast, the reserved block with the broadcast address, and
 * the public address through which every Azure VM reaches its platform services.
 * Holding one of them as an address or a local route would cut the machine off.
 */
const NEVER_ASSIGNED: { span: Span; what: string }[] = [
  { span: spanOf({ network: '0.0.0.0', prefixLength: 8 }), what: '"this network"' },
  { span: spanOf({ network: '127.0.0.0', prefixLength: 8 }), what: 'loopback' },
  { span: spanOf({ network: '169.254.0.0', prefixLength: 16 }), what: 'link-local (the metadata service)' },
  { span: spanOf({ network: '224.0.0.0', prefixLength: 4 }), what: 'multicast' },
  { span: spanOf({ network: '240.0.0.0', prefixLength: 4 }), what: 'reserved or broadcast' },
  { span: spanOf({ network: '168.63.129.16', prefixLength: 32 }), what: "Azure's platform address (DHCP, DNS, agent)" },
];

/** Why `cidr` can never be an interface's address or local range, or undefined when it can. */
export function neverAssignedReason(cidr: Cidr): string | undefined {
  const span = spanOf(cidr);
  return NEVER_ASSIGNED.find((range) => range.span.first <= span.last && span.first <= range.span.last)?.what;
}

/** Whether `ip` is a host of `cidr`: inside it, and neither its network nor its broadcast address. */
export function isHostOf(cidr: Cidr, ip: string): boolean {
  if (!cidrContains(cidr, ip)) return false;
  const offset = toInt(ip) - toInt(cidr.network);
  return offset > 0 && offset < 2 ** (32 - cidr.prefixLength) - 1;
}
