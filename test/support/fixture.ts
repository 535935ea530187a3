// Fixture loading and an independent reading of the metadata's NICs.
// The test world must not reuse src/ parsers: if both were wrong the same way, the end-to-end
// tests would pass against a broken program. This file re-derives only what the world needs.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export type Provider = 'ec2' | 'azure' | 'gcp';

/** test/fixtures/<provider>/<case>/metadata.json, see notes/CONTEXT.md. */
export interface Fixture {
  provider: Provider;
  /** URL pathname (no query) -> exact 200 body. */
  paths: Record<string, string>;
  /** Pathnames that answer 404. */
  notFound?: string[];
}

/** One NIC of the metadata, as the world lays it out (NIC-key order). */
export interface FixtureNic {
  /** Position in NIC-key order; the VM-side link is `eth${index}`. */
  index: number;
  /** NIC key n (EC2: 100*network-card + device-number; Azure/GCP: array position). */
  key: number;
  /** Lower case, colon separated. */
  mac: string;
  /** Private IPv4 addresses, primary first (GCP: only `ip`). */
  addresses: string[];
  /** Subnet as a.b.c.d/len (GCP: ip masked by subnetmask). */
  subnet: string;
  /** Prefix length of the primary as DHCP would set it (subnet's; GCP 32). */
  primaryPrefixLength: number;
  gateway: string;
  mtu?: number;
  /** GCP ipAliases then forwardedIps (CIDR or bare address), else []. */
  localRoutes: string[];
}

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const FIXTURES_DIR = join(REPO_ROOT, 'test/fixtures');

export const PATHS = {
  azureInstance: '/metadata/instance',
  gcpRoot: '/computeMetadata/v1/',
  ec2Macs: '/latest/meta-data/network/interfaces/macs/',
} as const;

/** Loads `test/fixtures/<name>/metadata.json` (name like "ec2/three-enis") or, for an absolute directory, its metadata.json. */
export function loadFixture(name: string): Fixture {
  const dir = name.startsWith('/') ? name : join(FIXTURES_DIR, name);
  const file = join(dir, 'metadata.json');
  if (!existsSync(file)) throw new Error(`fixture ${name}: ${file} does not exist`);
  return validateFixture(JSON.parse(readFileSync(file, 'utf8')), file);
}

function validateFixture(value: unknown, where: string): Fixture {
  const f = value as Fixture;
  if (!f || !['ec2', 'azure', 'gcp'].includes(f.provider) || typeof f.paths !== 'object') {
    throw new Error(`${where}: not a fixture ({provider, paths, notFound?})`);
  }
  return f;
}

/** Deep copy, so that tests can derive modified metadata without touching the original. */
export function cloneFixture(f: Fixture): Fixture {
  return structuredClone(f);
}

/** 000D3AE799B7 / 00-0D-3A-E7-99-B7 / 00:0D:3A:E7:99:B7 -> 00:0d:3a:e7:99:b7 */
export function normalizeMac(mac: string): string {
  const hex = mac.replace(/[^0-9a-fA-F]/g, '').toLowerCase();
  if (hex.length !== 12) throw new Error(`not a MAC address: ${JSON.stringify(mac)}`);
  return hex.match(/../g)!.join(':');
}

// --- IPv4 arithmetic (enough for subnets and gateways) ---

export function ipToInt(ip: string): number {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new Error(`not an IPv4 address: ${ip}`);
  }
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function maskOf(len: number): number {
  return len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
}

/** ("172.31.44.13", 20) -> "172.31.32.0/20" */
export function subnetOf(ip: string, len: number): string {
  return `${intToIp((ipToInt(ip) & maskOf(len)) >>> 0)}/${len}`;
}

/** "172.31.32.0/20" -> "172.31.32.1" (the EC2/Azure gateway). */
export function firstHost(cidr: string): string {
  const [net, len] = cidr.split('/');
  return intToIp(((ipToInt(net!) & maskOf(Number(len))) >>> 0) + 1);
}

/** "255.255.240.0" -> 20 */
export function maskToPrefix(mask: string): number {
  const n = ipToInt(mask);
  const len = 32 - Math.log2((~n >>> 0) + 1);
  if (!Number.isInteger(len) || maskOf(len) !== n) throw new Error(`not a netmask: ${mask}`);
  return len;
}

/** True when `ip` lies in `cidr`. */
export function cidrContains(cidr: string, ip: string): boolean {
  const [net, len] = cidr.split('/');
  const m = maskOf(Number(len ?? 32));
  return ((ipToInt(net!) & m) >>> 0) === ((ipToInt(ip) & m) >>> 0);
}

// --- NICs of a fixture ---

function lines(body: string | undefined): string[] {
  return (body ?? '').split('\n').map((l) => l.trim()).filter((l) => l !== '');
}

/** The NICs the metadata describes, in NIC-key order (which is also eth0, eth1, ... order). */
export function nicsOf(f: Fixture): FixtureNic[] {
  const raw = f.provider === 'ec2' ? ec2Nics(f) : f.provider === 'azure' ? azureNics(f) : gcpNics(f);
  return raw.sort((a, b) => a.key - b.key).map((n, index) => ({ ...n, index }));
}

type RawNic = Omit<FixtureNic, 'index'>;

function ec2Nics(f: Fixture): RawNic[] {
  const get = (p: string): string | undefined => (f.notFound?.includes(p) ? undefined : f.paths[p]);
  return lines(get(PATHS.ec2Macs)).map((entry) => {
    const mac = entry.replace(/\/$/, '');
    const base = `${PATHS.ec2Macs}${mac}/`;
    const card = Number(get(`${base}network-card`) ?? get(`${base}network-card-index`) ?? 0);
    const device = Number(get(`${base}device-number`) ?? NaN);
    const cidr = get(`${base}subnet-ipv4-cidr-block`);
    if (!Number.isInteger(device) || !cidr) throw new Error(`ec2 fixture: NIC ${mac} lacks device-number or subnet`);
    const addresses = lines(get(`${base}local-ipv4s`));
    const len = Number(cidr.split('/')[1]);
    return {
      key: 100 * card + device,
      mac: normalizeMac(mac),
      addresses,
      subnet: subnetOf(cidr.split('/')[0]!, len),
      primaryPrefixLength: len,
      gateway: firstHost(cidr),
      localRoutes: [],
    };
  });
}

interface AzureInterface {
  macAddress: string;
  ipv4: { ipAddress: { privateIpAddress: string }[]; subnet: { address: string; prefix: string }[] };
}

function azureNics(f: Fixture): RawNic[] {
  const doc = JSON.parse(f.paths[PATHS.azureInstance] ?? 'null') as { network: { interface: AzureInterface[] } };
  return doc.network.interface.map((nic, key) => {
    const sub = nic.ipv4.subnet[0]!;
    const len = Number(sub.prefix);
    const subnet = subnetOf(sub.address, len);
    return {
      key,
      mac: normalizeMac(nic.macAddress),
      addresses: nic.ipv4.ipAddress.map((a) => a.privateIpAddress).filter((a) => a !== ''),
      subnet,
      primaryPrefixLength: len,
      gateway: firstHost(subnet),
      localRoutes: [],
    };
  });
}

interface GcpInterface {
  mac: string;
  ip: string;
  subnetmask: string;
  gateway: string;
  mtu?: number;
  ipAliases?: string[];
  forwardedIps?: string[];
}

function gcpNics(f: Fixture): RawNic[] {
  const doc = JSON.parse(f.paths[PATHS.gcpRoot] ?? 'null') as { instance: { networkInterfaces: GcpInterface[] } };
  return doc.instance.networkInterfaces.map((nic, key) => ({
    key,
    mac: normalizeMac(nic.mac),
    addresses: [nic.ip],
    subnet: subnetOf(nic.ip, maskToPrefix(nic.subnetmask)),
    primaryPrefixLength: 32,
    gateway: nic.gateway,
    ...(nic.mtu !== undefined ? { mtu: Number(nic.mtu) } : {}),
    localRoutes: [...(nic.ipAliases ?? []), ...(nic.forwardedIps ?? [])],
  }));
}

// --- Metadata edits used by tests (return a new fixture) ---

/** The fixture with one IPv4 address of NIC `mac` removed (EC2 local-ipv4s / Azure ipAddress[]). */
export function withoutAddress(f: Fixture, mac: string, address: string): Fixture {
  const out = cloneFixture(f);
  const want = normalizeMac(mac);
  if (f.provider === 'ec2') {
    const entry = lines(f.paths[PATHS.ec2Macs]).map((m) => m.replace(/\/$/, '')).find((m) => normalizeMac(m) === want);
    const p = `${PATHS.ec2Macs}${entry}/local-ipv4s`;
    const before = lines(f.paths[p]);
    if (!entry || !before.includes(address)) throw new Error(`ec2 fixture: ${address} is not on ${mac}`);
    out.paths[p] = before.filter((a) => a !== address).join('\n');
    return out;
  }
  if (f.provider === 'azure') {
    return editJson(out, PATHS.azureInstance, (doc: { network: { interface: AzureInterface[] } }) => {
      const nic = doc.network.interface.find((n) => normalizeMac(n.macAddress) === want);
      if (!nic || !nic.ipv4.ipAddress.some((a) => a.privateIpAddress === address)) {
        throw new Error(`azure fixture: ${address} is not on ${mac}`);
      }
      nic.ipv4.ipAddress = nic.ipv4.ipAddress.filter((a) => a.privateIpAddress !== address);
    });
  }
  throw new Error('gcp has no secondary addresses: use withoutLocalRoute');
}

/** GCP: the fixture with one ipAliases/forwardedIps entry of NIC `mac` removed. */
export function withoutLocalRoute(f: Fixture, mac: string, cidr: string): Fixture {
  if (f.provider !== 'gcp') throw new Error('local routes exist only on gcp');
  const want = normalizeMac(mac);
  return editJson(cloneFixture(f), PATHS.gcpRoot, (doc: { instance: { networkInterfaces: GcpInterface[] } }) => {
    const nic = doc.instance.networkInterfaces.find((n) => normalizeMac(n.mac) === want);
    if (!nic) throw new Error(`gcp fixture: no NIC ${mac}`);
    const before = [...(nic.ipAliases ?? []), ...(nic.forwardedIps ?? [])];
    if (!before.includes(cidr)) throw new Error(`gcp fixture: ${cidr} is not on ${mac}`);
    nic.ipAliases = (nic.ipAliases ?? []).filter((c) => c !== cidr);
    nic.forwardedIps = (nic.forwardedIps ?? []).filter((c) => c !== cidr);
  });
}

/**
 * Applies `edit` to the JSON document at `path` and stores it back. Large integers (GCP's
 * instance id) lose precision through JSON.parse; that field is not network data.
 */
export function editJson<T>(f: Fixture, path: string, edit: (doc: T) => void): Fixture {
  const body = f.paths[path];
  if (body === undefined) throw new Error(`fixture has no ${path}`);
  const doc = JSON.parse(body) as T;
  edit(doc);
  f.paths[path] = JSON.stringify(doc);
  return f;
}
