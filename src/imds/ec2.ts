// EC2 instance metadata (IMDSv2). Reads the MAC listing and, per MAC, only the keys the
// plan needs, in parallel; display-only keys and documents are fetched only when asked.
import type { InstanceMetadata, InterfaceMetadata, ProviderDocuments, RejectedInterface } from '../model.js';
import { isPlausibleSubnet, normalizeMac, parseIPv4, parseIPv4Cidr } from '../net.js';
import { ImdsError, mapBounded, requestWithRetry, type RetryPolicy, type Transport } from './http.js';
import type { MetadataClient } from './provider.js';
import { checkInterfaces, subnetInterface } from './validate.js';

const TOKEN_TTL_SECONDS = 21600;
/** Renew the token this long before it expires, so that no request races the expiry. */
const TOKEN_RENEW_MARGIN_MS = 60_000;
const RETRY: RetryPolicy = { attempts: 3, retryStatuses: [429, 500, 502, 503, 504] };
const PARALLEL_REQUESTS = 8;
/** How often a NIC-key conflict (hot-plug propagation) is re-read before it is given up on. */
const CONFLICT_RETRIES = 3;
const CONFLICT_RETRY_MS = 500;
const MD = '/latest/meta-data';

const SYSTEM_KEYS = [
  'ami-id', 'ami-launch-index', 'hostname', 'instance-id', 'instance-life-cycle', 'instance-type',
  'local-hostname', 'local-ipv4', 'mac', 'profile', 'public-hostname', 'public-ipv4', 'reservation-id',
  'security-groups', 'placement/availability-zone', 'placement/availability-zone-id', 'placement/region',
  'services/domain', 'services/partition',
];
const DISPLAY_KEYS = [
  'interface-id', 'owner-id', 'local-hostname', 'public-hostname', 'public-ipv4s', 'ipv6s', 'ipv4-prefix',
  'security-group-ids', 'security-groups', 'subnet-id', 'vpc-id', 'vpc-ipv4-cidr-blocks',
];
const MULTI_VALUE_KEYS = new Set(['local-ipv4s', 'public-ipv4s', 'ipv6s', 'ipv4-prefix', 'security-group-ids', 'security-groups', 'vpc-ipv4-cidr-blocks']);
const IDENTITY_NAMES = ['document', 'pkcs7', 'signature', 'rsa2048'];

const lines = (text: string) => text.split('\n').map((line) => line.trim()).filter((line) => line !== '');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What one MAC's keys said, before validation. */
interface RawNic {
  /** Normalized, for matching links. */
  mac: string;
  /** As the listing spells it: the service's per-MAC paths use this spelling. */
  listed: string;
  values: Record<string, string>;
  error?: string;
}

export class Ec2Client implements MetadataClient {
  private token?: { value: string; expiresAt: number };
  /** Set when the token endpoint answered 404/405: this service only speaks IMDSv1. */
  private imdsV1 = false;

  constructor(private readonly transport: Transport) {}

  private async ensureToken(): Promise<string | undefined> {
    if (this.imdsV1) return undefined;
    if (this.token && this.token.expiresAt - TOKEN_RENEW_MARGIN_MS > Date.now()) return this.token.value;
    const response = await requestWithRetry(
      this.transport,
      { method: 'PUT', path: '/latest/api/token', headers: { 'X-aws-ec2-metadata-token-ttl-seconds': String(TOKEN_TTL_SECONDS) } },
      RETRY,
    );
    if (response.status === 404 || response.status === 405) {
      this.imdsV1 = true;
      return undefined;
    }
    if (response.status === 403) {
      throw new ImdsError(`EC2 metadata token request answered 403: the instance metadata service is disabled for this instance (aws ec2 modify-instance-metadata-options --http-endpoint enabled)`);
    }
    const value = response.body.trim();
    if (response.status !== 200 || value === '' || /\s/.test(value) || value.length > 1024) {
      throw new ImdsError(`EC2 metadata token request answered HTTP ${response.status} without a usable token`);
    }
    const ttl = Number(response.headers['x-aws-ec2-metadata-token-ttl-seconds'] ?? TOKEN_TTL_SECONDS);
    this.token = { value, expiresAt: Date.now() + (Number.isFinite(ttl) ? ttl : TOKEN_TTL_SECONDS) * 1000 };
    return value;
  }

  /** GET a key; undefined when the service says 404 (the key is not assigned). */
  private async get(path: string): Promise<string | undefined> {
    for (let attempt = 0; ; attempt++) {
      const token = await this.ensureToken();
      const headers: Record<string, string> = token ? { 'X-aws-ec2-metadata-token': token } : {};
      const response = await requestWithRetry(this.transport, { method: 'GET', path, headers }, RETRY);
      if (response.status === 200) return response.body;
      if (response.status === 404) return undefined;
      // 401: the token expired or the service restarted; one fresh token, then give up.
      if (response.status === 401 && attempt === 0) {
        this.token = undefined;
        continue;
      }
      throw new ImdsError(`metadata request GET ${this.transport.base}${path} answered HTTP ${response.status}`);
    }
  }

  private async require(path: string): Promise<string> {
    const body = await this.get(path);
    if (body === undefined) throw new ImdsError(`metadata key ${path} is missing (HTTP 404)`);
    return body;
  }

  private async readNic(mac: string, listed: string, keys: string[]): Promise<RawNic> {
    const values: Record<string, string> = {};
    const base = `${MD}/network/interfaces/macs/${listed}`;
    try {
      await Promise.all(
        keys.map(async (key) => {
          const body = await this.get(`${base}/${key}`);
          if (body !== undefined) values[key] = body;
        }),
      );
      // Newer documentation spells the card key network-card-index; ask only when needed.
      if (keys.includes('network-card') && values['network-card'] === undefined) {
        const index = await this.get(`${base}/network-card-index`);
        if (index !== undefined) values['network-card'] = index;
      }
      return { mac, listed, values };
    } catch (error) {
      return { mac, listed, values, error: (error as Error).message };
    }
  }

  private async readNetwork(): Promise<{ topMac: string; nics: RawNic[]; rejected: RejectedInterface[] }> {
    const topMac = normalizeMac(await this.require(`${MD}/mac`));
    if (!topMac) throw new ImdsError(`metadata key ${MD}/mac is not a MAC address`);
    const listing = lines(await this.require(`${MD}/network/interfaces/macs/`));
    const rejected: RejectedInterface[] = [];
    const macs: { mac: string; listed: string }[] = [];
    for (const entry of listing) {
      const listed = entry.replace(/\/$/, '');
      const mac = normalizeMac(listed);
      if (mac) macs.push({ mac, listed });
      else rejected.push({ reason: `MAC listing entry ${JSON.stringify(entry.slice(0, 40))} is not a MAC address` });
    }
    if (macs.length === 0) throw new ImdsError('EC2 metadata lists no network interface');
    // The primary ENI cannot be detached: a listing without it is a half-read, not a change.
    if (!macs.some(({ mac }) => mac === topMac)) {
      throw new ImdsError(`EC2 metadata MAC listing lacks the primary interface ${topMac}; not trusting it`);
    }
    const nics = await mapBounded(macs, PARALLEL_REQUESTS, ({ mac, listed }) =>
      this.readNic(mac, listed, ['device-number', 'network-card', 'local-ipv4s', 'subnet-ipv4-cidr-block']),
    );
    return { topMac, nics, rejected };
  }

  async fetchMetadata(options: { documents: boolean }): Promise<InstanceMetadata> {
    let network = await this.readNetwork();
    let parsed = parseNics(network.nics, network.topMac);
    // A hot-plugged ENI can briefly report device-number 0: read again before giving up.
    for (let retry = 1; retry <= CONFLICT_RETRIES && parsed.conflicts; retry++) {
      await sleep(CONFLICT_RETRY_MS * retry);
      network = await this.readNetwork();
      parsed = parseNics(network.nics, network.topMac);
    }
    const rejected = [...network.rejected, ...parsed.rejected];
    if (parsed.interfaces.length === 0) {
      throw new ImdsError(`EC2 metadata has no usable network interface: ${rejected.map((r) => r.reason).join('; ')}`);
    }
    const documents = options.documents ? await this.readDocuments(network.nics) : { system: {}, network: {} };
    return { provider: 'ec2', interfaces: parsed.interfaces, rejected, documents };
  }

  /** A display-only key: a failure leaves it out rather than failing the network refresh. */
  private async getForDisplay(path: string): Promise<string | undefined> {
    try {
      return await this.get(path);
    } catch (error) {
      if (error instanceof ImdsError) return undefined;
      throw error;
    }
  }

  private async readDocuments(nics: RawNic[]): Promise<ProviderDocuments> {
    const system: Record<string, unknown> = {};
    await Promise.all(
      SYSTEM_KEYS.map(async (key) => {
        const value = await this.getForDisplay(`${MD}/${key}`);
        if (value !== undefined) system[key] = value;
      }),
    );
    system['public-keys'] = await this.readPublicKeys();
    const display = await mapBounded(nics, PARALLEL_REQUESTS, (nic) => this.readNic(nic.mac, nic.listed, DISPLAY_KEYS));
    const network: Record<string, Record<string, unknown>> = {};
    nics.forEach((nic, index) => {
      const values = { ...nic.values, ...display[index]!.values };
      network[nic.mac] = Object.fromEntries(
        Object.entries(values)
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([key, value]) => [key, MULTI_VALUE_KEYS.has(key) ? lines(value) : value.trim()]),
      );
    });
    const identity: Record<string, string> = {};
    await Promise.all(
      IDENTITY_NAMES.map(async (name) => {
        const value = await this.getForDisplay(`/latest/dynamic/instance-identity/${name}`);
        if (value !== undefined) identity[name] = value;
      }),
    );
    return { system, network, interfaces: network, identity, credentials: await this.readCredentials() };
  }

  private async readPublicKeys(): Promise<Record<string, string>> {
    const keys: Record<string, string> = {};
    for (const entry of lines((await this.getForDisplay(`${MD}/public-keys/`)) ?? '')) {
      const [index, name] = entry.split('=');
      if (!/^\d+$/.test(index ?? '') || !name) continue;
      const key = await this.getForDisplay(`${MD}/public-keys/${index}/openssh-key`);
      if (key !== undefined) keys[name] = key.trim();
    }
    return keys;
  }

  private async readCredentials(): Promise<unknown> {
    const role = lines((await this.getForDisplay(`${MD}/iam/security-credentials/`)) ?? '')[0];
    if (!role) return undefined;
    const body = await this.getForDisplay(`${MD}/iam/security-credentials/${role}`);
    try {
      return body === undefined ? undefined : { role, ...(JSON.parse(body) as object) };
    } catch {
      return undefined;
    }
  }
}

/**
 * Validates each MAC's keys. Two NICs with one key would share a table, and only the top-level
 * MAC is really key 0 (a hot-plugged ENI reads device-number 0 until it has propagated): such
 * NICs are held back, and `conflicts` asks the caller to read again.
 */
export function parseNics(nics: RawNic[], topMac: string) {
  let interfaces: InterfaceMetadata[] = [];
  const rejected: RejectedInterface[] = [];
  for (const nic of nics) {
    const result = parseNic(nic);
    if (typeof result === 'string') rejected.push({ mac: nic.mac, reason: result });
    else interfaces.push(result);
  }
  interfaces = checkInterfaces(interfaces, rejected);
  const holdBack = (nic: InterfaceMetadata, reason: string) => {
    interfaces.splice(interfaces.indexOf(nic), 1);
    rejected.push({ mac: nic.mac, reason });
  };
  let conflicts = false;
  for (const nic of interfaces.filter((candidate) => candidate.key === 0 && candidate.mac !== topMac)) {
    conflicts = true;
    holdBack(nic, `reports NIC key 0 (network-card 0, device-number 0), which belongs to the primary interface ${topMac}`);
  }
  const byKey = new Map<number, InterfaceMetadata[]>();
  for (const nic of interfaces) byKey.set(nic.key, [...(byKey.get(nic.key) ?? []), nic]);
  for (const [key, sharing] of byKey) {
    if (sharing.length < 2) continue;
    conflicts = true;
    for (const nic of sharing) {
      const others = sharing.filter((other) => other !== nic).map((other) => other.mac);
      holdBack(nic, `NIC key ${key} (network-card, device-number) is also reported for ${others.join(', ')}`);
    }
  }
  return { interfaces, rejected, conflicts };
}

function parseNic(nic: RawNic): InterfaceMetadata | string {
  if (nic.error) return nic.error;
  const device = nic.values['device-number']?.trim();
  const card = nic.values['network-card']?.trim() ?? '0';
  if (device === undefined || !/^\d{1,3}$/.test(device)) return `device-number ${JSON.stringify(device ?? null)} is not a small integer`;
  if (!/^\d{1,2}$/.test(card)) return `network-card ${JSON.stringify(card)} is not a small integer`;
  const subnet = parseIPv4Cidr(nic.values['subnet-ipv4-cidr-block'] ?? '');
  if (!subnet || !isPlausibleSubnet(subnet)) return `subnet-ipv4-cidr-block ${JSON.stringify(nic.values['subnet-ipv4-cidr-block'] ?? null)} is not an IPv4 subnet of /8 to /30`;
  const listed = lines(nic.values['local-ipv4s'] ?? '');
  if (listed.length === 0) return 'no private IPv4 address (local-ipv4s)';
  const addresses: string[] = [];
  for (const entry of listed) {
    const address = parseIPv4(entry);
    if (!address) return `local-ipv4s entry ${JSON.stringify(entry.slice(0, 40))} is not an IPv4 address`;
    if (!addresses.includes(address)) addresses.push(address);
  }
  return subnetInterface(nic.mac, 100 * Number(card) + Number(device), addresses, subnet);
}
