// Azure Instance Metadata Service: one GET of the whole instance document.
import type { InstanceMetadata, InterfaceMetadata, RejectedInterface } from '../model.js';
import { isPlausibleSubnet, normalizeMac, parseIPv4, parseIPv4Cidr } from '../net.js';
import { ImdsError, requestWithRetry, type RetryPolicy, type Transport } from './http.js';
import type { MetadataClient } from './provider.js';
import { asArray, asObject, parseInterfaceList, parseJsonDocument, subnetInterface } from './validate.js';

export const AZURE_API_VERSION = '2021-02-01';
const RETRY: RetryPolicy = { attempts: 3, retryStatuses: [410, 429, 500, 502, 503, 504] };
/** Compute fields that may hold secrets; never served or written. */
const SECRET_COMPUTE_KEYS = ['userData', 'customData'];

type Json = Record<string, unknown>;

export class AzureClient implements MetadataClient {
  constructor(private readonly transport: Transport) {}

  async fetchMetadata(): Promise<InstanceMetadata> {
    const path = `/metadata/instance?api-version=${AZURE_API_VERSION}&format=json`;
    const response = await requestWithRetry(this.transport, { method: 'GET', path, headers: { Metadata: 'true' } }, RETRY);
    if (response.status !== 200) throw new ImdsError(`Azure metadata GET ${this.transport.base}${path} answered HTTP ${response.status}`);
    return parseAzureDocument(parseJsonDocument(response.body, 'Azure metadata document'));
  }
}

export function parseAzureDocument(document: Json): InstanceMetadata {
  const network = asObject(document.network);
  const entries = network?.interface;
  if (!network || !Array.isArray(entries)) throw new ImdsError('Azure metadata document has no network.interface list');
  const { interfaces, rejected } = parseInterfaceList(entries, parseInterface, 'Azure metadata');
  const compute = { ...asObject(document.compute) };
  for (const key of SECRET_COMPUTE_KEYS) delete compute[key];
  const byMac = Object.fromEntries(interfaces.map((nic) => [nic.mac, entries[nic.key]]));
  return { provider: 'azure', interfaces, rejected, documents: { system: compute, network, interfaces: byMac } };
}

function parseInterface(entry: Json, key: number): InterfaceMetadata | RejectedInterface {
  const mac = normalizeMac(String(entry.macAddress ?? ''));
  const reject = (reason: string): RejectedInterface => ({ ...(mac ? { mac } : {}), reason: `interface ${key}: ${reason}` });
  if (!mac) return reject(`macAddress ${JSON.stringify(entry.macAddress ?? null)} is not a MAC address`);
  const ipv4 = asObject(entry.ipv4) ?? {};
  const subnetEntry = asObject(asArray(ipv4.subnet)[0]) ?? {};
  const subnet = parseIPv4Cidr(`${String(subnetEntry.address ?? '')}/${String(subnetEntry.prefix ?? '')}`);
  if (!subnet || !isPlausibleSubnet(subnet)) return reject(`ipv4.subnet[0] ${JSON.stringify(subnetEntry)} is not an IPv4 subnet of /8 to /30`);
  const addresses: string[] = [];
  for (const item of asArray(ipv4.ipAddress)) {
    const text = String(asObject(item)?.privateIpAddress ?? '');
    const address = parseIPv4(text);
    if (!address) return reject(`privateIpAddress ${JSON.stringify(text.slice(0, 40))} is not an IPv4 address`);
    if (!addresses.includes(address)) addresses.push(address);
  }
  const nic = subnetInterface(mac, key, addresses, subnet);
  return typeof nic === 'string' ? reject(nic) : nic;
}
