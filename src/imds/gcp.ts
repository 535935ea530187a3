// GCE metadata server: one recursive GET of the root document (instance + project).
import type { InstanceMetadata, InterfaceMetadata, RejectedInterface } from '../model.js';
import { isPlausibleSubnet, networkOf, normalizeMac, parseIPv4, parseIPv4Range, prefixFromNetmask } from '../net.js';
import { ImdsError, requestWithRetry, type HttpResponse, type RetryPolicy, type Transport } from './http.js';
import type { MetadataClient } from './provider.js';
import { asArray, asObject, parseInterfaceList, parseJsonDocument } from './validate.js';

const RETRY: RetryPolicy = { attempts: 3, retryStatuses: [429, 500, 502, 503, 504] };
const ROOT = '/computeMetadata/v1/?recursive=true';
const MTU_RANGE = [576, 9216] as const;

type Json = Record<string, unknown>;

/** The server holds a wait_for_change request up to this long, then answers with the current value. */
const WAIT_SECONDS = 60;
const MIN_POLL_MS = 1_000;

export class GcpClient implements MetadataClient {
  /** ETag of the last document read, for wait_for_change. */
  private etag?: string;

  constructor(private readonly transport: Transport) {}

  async fetchMetadata(): Promise<InstanceMetadata> {
    return this.read(ROOT, undefined);
  }

  /** Resolves when the metadata server reports a document different from the last one read. */
  async waitForChange(): Promise<InstanceMetadata> {
    for (;;) {
      const before = this.etag;
      if (!before) throw new ImdsError('GCP metadata answers carry no ETag; cannot wait for changes');
      const path = `${ROOT}&wait_for_change=true&last_etag=${encodeURIComponent(before)}&timeout_sec=${WAIT_SECONDS}`;
      const started = Date.now();
      const metadata = await this.read(path, (WAIT_SECONDS + 5) * 1000);
      if (this.etag !== before) return metadata;
      // An unchanged answer that came back at once (a server ignoring wait_for_change) must not spin.
      const elapsed = Date.now() - started;
      if (elapsed < MIN_POLL_MS) await new Promise((resolve) => setTimeout(resolve, MIN_POLL_MS - elapsed));
    }
  }

  private async read(path: string, timeoutMs: number | undefined): Promise<InstanceMetadata> {
    const request = { method: 'GET' as const, path, headers: { 'Metadata-Flavor': 'Google' }, ...(timeoutMs ? { timeoutMs } : {}) };
    const response = await requestWithRetry(this.transport, request, RETRY);
    const metadata = parseGcpDocument(this.checked(response, path));
    const etag = response.headers.etag;
    this.etag = typeof etag === 'string' && etag !== '' ? etag : undefined;
    return metadata;
  }

  /** The body of a 200 answer that really came from the metadata server. */
  private checked(response: HttpResponse, path: string): Json {
    if (response.status !== 200) throw new ImdsError(`GCP metadata GET ${this.transport.base}${path} answered HTTP ${response.status}`);
    if (response.headers['metadata-flavor'] !== 'Google') {
      throw new ImdsError(`GCP metadata answer from ${this.transport.base} lacks the Metadata-Flavor: Google header; it is not the metadata server`);
    }
    // Instance ids are 64-bit integers: as JSON numbers they would be rounded to a double.
    const body = response.body.replace(/"(id|numericProjectId)":\s*(\d{16,})/g, '"$1":"$2"');
    return parseJsonDocument(body, 'GCP metadata document');
  }
}

/** Only ssh-keys of the attributes are kept: other attributes (startup scripts) may hold secrets. */
function publicAttributes(owner: Json | undefined): Json {
  const attributes = asObject(owner?.attributes);
  return attributes && typeof attributes['ssh-keys'] === 'string' ? { 'ssh-keys': attributes['ssh-keys'] } : {};
}

export function parseGcpDocument(document: Json): InstanceMetadata {
  const instance = asObject(document.instance);
  if (!instance || !Array.isArray(instance.networkInterfaces)) throw new ImdsError('GCP metadata document has no instance.networkInterfaces list');
  const { interfaces, rejected } = parseInterfaceList(instance.networkInterfaces, parseInterface, 'GCP metadata');
  const { networkInterfaces, ...system } = instance;
  const project = asObject(document.project);
  return {
    provider: 'gcp',
    interfaces,
    rejected,
    documents: {
      system: {
        ...system,
        attributes: publicAttributes(instance),
        project: project && { projectId: project.projectId, numericProjectId: project.numericProjectId, attributes: publicAttributes(project) },
      },
      network: networkInterfaces,
      interfaces: Object.fromEntries(interfaces.map((nic) => [nic.mac, (networkInterfaces as unknown[])[nic.key]])),
    },
  };
}

function parseInterface(entry: Json, key: number): InterfaceMetadata | RejectedInterface {
  const mac = normalizeMac(String(entry.mac ?? ''));
  const reject = (reason: string): RejectedInterface => ({ ...(mac ? { mac } : {}), reason: `interface ${key}: ${reason}` });
  if (!mac) return reject(`mac ${JSON.stringify(entry.mac ?? null)} is not a MAC address`);
  const ip = parseIPv4(String(entry.ip ?? ''));
  if (!ip) return reject(`ip ${JSON.stringify(entry.ip ?? null)} is not an IPv4 address`);
  const prefixLength = prefixFromNetmask(String(entry.subnetmask ?? ''));
  if (prefixLength === undefined || !isPlausibleSubnet({ network: ip, prefixLength })) {
    return reject(`subnetmask ${JSON.stringify(entry.subnetmask ?? null)} is not a netmask of /8 to /30`);
  }
  const gateway = parseIPv4(String(entry.gateway ?? ''));
  if (!gateway) return reject(`gateway ${JSON.stringify(entry.gateway ?? null)} is not an IPv4 address`);
  let mtu: number | undefined;
  if (entry.mtu !== undefined) {
    mtu = Number(entry.mtu);
    if (!Number.isInteger(mtu) || mtu < MTU_RANGE[0] || mtu > MTU_RANGE[1]) return reject(`mtu ${JSON.stringify(entry.mtu)} is out of range`);
  }
  const localRoutes: string[] = [];
  for (const item of [...asArray(entry.ipAliases), ...asArray(entry.forwardedIps)]) {
    const range = parseIPv4Range(String(item));
    if (!range) return reject(`alias or forwarded IP ${JSON.stringify(item)} is not an IPv4 range`);
    if (!localRoutes.includes(range)) localRoutes.push(range);
  }
  return {
    mac,
    key,
    addresses: [ip],
    primaryPrefixLength: 32,
    subnet: { network: networkOf(ip, prefixLength), prefixLength },
    gateway,
    linkRoute: 'gateway',
    ...(mtu === undefined ? {} : { mtu }),
    localRoutes,
  };
}
