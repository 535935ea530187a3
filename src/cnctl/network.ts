// `cnctl status network`: one block per interface. Each cloud's network document has its own
// shape; they are brought to the same rows, and the kernel name and routing table come from
// /api/v1/status, matched by MAC.
import type { ProviderName } from '../model.js';
import { cidrText, firstHost, normalizeMac, parseIPv4Cidr, prefixFromNetmask, type Cidr } from '../net.js';
import { asArray, asObject, lastSegment, show, strings } from './json.js';
import { blocks, type Row } from './layout.js';

interface NicView {
  mac: string;
  privateIps: string[];
  publicIps: string[];
  subnet?: Cidr;
  gateway?: string;
  /** Provider-specific rows, shown only when they have a value. */
  extras: Row[];
}

const extra = (label: string, value: unknown): Row[] => (show(value) === '-' ? [] : [[label, show(value)]]);
/** Private addresses carry the subnet's prefix, as the cloud assigns them from it. */
const withPrefix = (addresses: string[], subnet: Cidr | undefined) =>
  addresses.map((address) => (subnet ? `${address}/${subnet.prefixLength}` : address));
const macOf = (value: unknown) => normalizeMac(String(value ?? '')) ?? show(value);

/** EC2: an object keyed by MAC, shown in NIC-key order (network card, then device number). */
function ec2Nics(document: unknown): NicView[] {
  const nicKey = (nic: Record<string, unknown>) => {
    const key = 100 * Number(nic['network-card'] ?? 0) + Number(nic['device-number']);
    return Number.isFinite(key) ? key : Number.MAX_SAFE_INTEGER; // unreadable numbers go last
  };
  return Object.entries(asObject(document))
    .map(([mac, value]) => ({ mac, nic: asObject(value) }))
    .sort((a, b) => nicKey(a.nic) - nicKey(b.nic))
    .map(({ mac, nic }) => {
      const subnet = parseIPv4Cidr(String(nic['subnet-ipv4-cidr-block'] ?? ''));
      return {
        mac,
        privateIps: withPrefix(strings(nic['local-ipv4s']), subnet),
        publicIps: strings(nic['public-ipv4s']),
        subnet,
        // EC2 does not publish the gateway: it is the subnet's first host, as the daemon routes it.
        gateway: subnet && firstHost(subnet),
        extras: [
          ...extra('Device number', nic['device-number']),
          ...extra('Network card', nic['network-card']),
          ...extra('Interface ID', nic['interface-id']),
          ...extra('Subnet ID', nic['subnet-id']),
          ...extra('VPC', nic['vpc-id']),
          ...extra('Security groups', nic['security-group-ids']),
          ...extra('IPv4 prefixes', nic['ipv4-prefix']),
          ...extra('IPv6 addresses', nic.ipv6s),
        ],
      };
    });
}

/** Azure: {interface: [...]} in NIC order, MACs upper case without separators. */
function azureNics(document: unknown): NicView[] {
  return asArray(asObject(document).interface).map((entry) => {
    const nic = asObject(entry);
    const ipv4 = asObject(nic.ipv4);
    const subnetEntry = asObject(asArray(ipv4.subnet)[0]);
    const subnet = parseIPv4Cidr(`${String(subnetEntry.address)}/${String(subnetEntry.prefix)}`);
    const addresses = asArray(ipv4.ipAddress).map(asObject);
    return {
      mac: macOf(nic.macAddress),
      privateIps: withPrefix(strings(addresses.map((address) => address.privateIpAddress)), subnet),
      publicIps: strings(addresses.map((address) => address.publicIpAddress)),
      subnet,
      gateway: subnet && firstHost(subnet),
      extras: extra('IPv6 addresses', asArray(asObject(nic.ipv6).ipAddress).map((address) => asObject(address).privateIpAddress)),
    };
  });
}

/** GCP: the networkInterfaces array; one address per NIC, the rest arrives as local routes. */
function gcpNics(document: unknown): NicView[] {
  return asArray(document).map((entry) => {
    const nic = asObject(entry);
    const prefix = prefixFromNetmask(String(nic.subnetmask ?? ''));
    const subnet = prefix === undefined ? undefined : parseIPv4Cidr(`${String(nic.ip)}/${prefix}`);
    return {
      mac: macOf(nic.mac),
      privateIps: withPrefix(strings([nic.ip]), subnet),
      publicIps: strings(asArray(nic.accessConfigs).map((config) => asObject(config).externalIp)),
      subnet,
      gateway: typeof nic.gateway === 'string' ? nic.gateway : undefined,
      extras: [
        ...extra('MTU', nic.mtu),
        ...extra('Network', lastSegment(nic.network)),
        ...extra('IP aliases', nic.ipAliases),
        ...extra('Forwarded IPs', nic.forwardedIps),
        ...extra('Target instance IPs', nic.targetInstanceIps),
      ],
    };
  });
}

const NICS: Record<ProviderName, (document: unknown) => NicView[]> = { ec2: ec2Nics, azure: azureNics, gcp: gcpNics };

export function networkView(provider: ProviderName, document: unknown, status: unknown): string {
  const nics = NICS[provider](document);
  if (nics.length === 0) return 'no network interfaces in the metadata\n';
  const managed = new Map(asArray(asObject(status).interfaces).map((entry) => [asObject(entry).mac, asObject(entry)]));
  return blocks(
    nics.map((nic) => {
      // An interface the daemon does not manage (unmanaged, no link, rejected) has no name or table.
      const link = managed.get(nic.mac);
      return [
        ['Name', show(link?.name)],
        ['MAC Address', nic.mac],
        ['Private IPs', show(nic.privateIps)],
        ['Public IPs', show(nic.publicIps)],
        ['Subnet', nic.subnet ? cidrText(nic.subnet) : '-'],
        ['Gateway', show(nic.gateway)],
        ['Route table', show(link?.table)],
        ...nic.extras,
      ];
    }),
  );
}
