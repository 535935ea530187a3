// Synthetic instance metadata for the benchmark: N interfaces x M private IPv4 addresses, in the
// fixture format of notes/CONTEXT.md (what the mock IMDS serves). Everything that is not network
// data (instance identity, IAM, Azure compute, GCP project) is copied from the recorded golden
// fixtures, so the documents the program reads are realistic in size and shape.
//
// Layout (worst case for the planner: every interface in its own subnet, so every table carries
// a route to each of the other N-1 subnets):
//   NIC i: subnet 10.1.(16*i).0/20, gateway .1, primary 10.1.(16*i).10, further addresses
//          10.1.(16*i).11, .12, ... (all inside the subnet, as EC2 and Azure assign them)
//   GCP has one address per interface (`ip`, a /32): the other M-1 addresses of a size become
//          ipAliases (/29 ranges from 10.(100+i).0.0/16) and forwardedIps (10.(150+i).0.x),
//          alternating, i.e. `local` routes instead of addresses. MTU 1460 as on GCE.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES_DIR, PATHS, type Fixture, type Provider } from '../test/support/fixture.js';

export interface Size {
  nics: number;
  addresses: number;
}

export const sizeLabel = (s: Size): string => `${s.nics}x${s.addresses}`;

const template = (name: string): Fixture => JSON.parse(readFileSync(join(FIXTURES_DIR, name, 'metadata.json'), 'utf8')) as Fixture;

function ip(a: number, b: number, c: number, d: number): string {
  return `${a}.${b}.${c}.${d}`;
}

interface SyntheticNic {
  mac: string;
  subnetAddress: string;
  prefix: number;
  gateway: string;
  addresses: string[];
}

function nicsFor(size: Size): SyntheticNic[] {
  if (size.nics < 1 || size.nics > 15) throw new Error(`interfaces must be 1..15 (got ${size.nics})`);
  if (size.addresses < 1 || size.addresses > 200) throw new Error(`addresses must be 1..200 (got ${size.addresses})`);
  return Array.from({ length: size.nics }, (_, i) => {
    const third = 16 * i;
    return {
      mac: `0a:be:00:00:${i.toString(16).padStart(2, '0')}:01`,
      subnetAddress: ip(10, 1, third, 0),
      prefix: 20,
      gateway: ip(10, 1, third, 1),
      addresses: Array.from({ length: size.addresses }, (_, j) => ip(10, 1, third + Math.floor((10 + j) / 256), (10 + j) % 256)),
    };
  });
}

export function syntheticFixture(provider: Provider, size: Size): Fixture {
  switch (provider) {
    case 'ec2':
      return ec2(size);
    case 'azure':
      return azure(size);
    case 'gcp':
      return gcp(size);
  }
}

/** EC2: the recorded three-ENI tree with its network part replaced (single-card type: network-card answers 404). */
function ec2(size: Size): Fixture {
  const base = template('ec2/three-enis');
  const md = '/latest/meta-data';
  const paths: Record<string, string> = {};
  for (const [path, body] of Object.entries(base.paths)) {
    if (!path.startsWith(`${md}/network/interfaces/macs/`)) paths[path] = body;
  }
  const nics = nicsFor(size);
  const first = nics[0]!;
  const hostname = `ip-${first.addresses[0]!.replaceAll('.', '-')}.us-east-2.compute.internal`;
  Object.assign(paths, {
    [`${md}/mac`]: first.mac,
    [`${md}/local-ipv4`]: first.addresses[0]!,
    [`${md}/hostname`]: hostname,
    [`${md}/local-hostname`]: hostname,
    [`${md}/instance-type`]: 'm5.24xlarge',
    [PATHS.ec2Macs]: nics.map((nic) => `${nic.mac}/`).join('\n'),
  });
  nics.forEach((nic, i) => {
    const dir = `${PATHS.ec2Macs}${nic.mac}/`;
    const keys: Record<string, string> = {
      'device-number': String(i),
      'interface-id': `eni-0be0000000000${i.toString(16).padStart(4, '0')}`,
      'local-hostname': `ip-${nic.addresses[0]!.replaceAll('.', '-')}.us-east-2.compute.internal`,
      'local-ipv4s': nic.addresses.join('\n'),
      mac: nic.mac,
      'owner-id': '123456789012',
      'security-group-ids': 'sg-0c387755222ba8d2e',
      'security-groups': 'launch-wizard-4',
      'subnet-id': `subnet-0be00000000${i.toString(16).padStart(6, '0')}`,
      'subnet-ipv4-cidr-block': `${nic.subnetAddress}/${nic.prefix}`,
      'vpc-id': 'vpc-a07f62c8',
      'vpc-ipv4-cidr-block': '10.1.0.0/16',
      'vpc-ipv4-cidr-blocks': '10.1.0.0/16',
    };
    paths[dir] = Object.keys(keys).sort().join('\n');
    for (const [key, value] of Object.entries(keys)) paths[`${dir}${key}`] = value;
  });
  // Unknown paths answer 404 anyway; these are the ones a client is expected to ask for.
  const notFound = nics.flatMap((nic) =>
    ['network-card', 'network-card-index', 'public-ipv4s', 'ipv6s', 'ipv4-prefix'].map((key) => `${PATHS.ec2Macs}${nic.mac}/${key}`),
  );
  return { provider: 'ec2', paths, notFound };
}

/** Azure: the recorded compute document with a synthetic network.interface list. */
function azure(size: Size): Fixture {
  const doc = JSON.parse(template('azure/three-nics').paths[PATHS.azureInstance]!) as Record<string, unknown>;
  doc.network = {
    interface: nicsFor(size).map((nic) => ({
      ipv4: {
        ipAddress: nic.addresses.map((address) => ({ privateIpAddress: address, publicIpAddress: '' })),
        subnet: [{ address: nic.subnetAddress, prefix: String(nic.prefix) }],
      },
      ipv6: { ipAddress: [] },
      macAddress: nic.mac.replaceAll(':', '').toUpperCase(),
    })),
  };
  return { provider: 'azure', paths: { [PATHS.azureInstance]: JSON.stringify(doc) } };
}

/** GCP: the recorded root document with synthetic networkInterfaces (see the file comment). */
function gcp(size: Size): Fixture {
  const doc = JSON.parse(template('gcp/two-nics-aliases').paths[PATHS.gcpRoot]!) as { instance: Record<string, unknown> };
  doc.instance.networkInterfaces = nicsFor(size).map((nic, i) => {
    const ipAliases: string[] = [];
    const forwardedIps: string[] = [];
    for (let k = 1; k < size.addresses; k++) {
      if (k % 2 === 1) ipAliases.push(`10.${100 + i}.${Math.floor(k / 32)}.${(k % 32) * 8}/29`);
      else forwardedIps.push(`10.${150 + i}.${Math.floor(k / 250)}.${(k % 250) + 1}`);
    }
    return {
      accessConfigs: [],
      dnsServers: ['169.254.169.254'],
      forwardedIps,
      gateway: nic.gateway,
      ip: nic.addresses[0]!,
      ipAliases,
      mac: nic.mac.replace(/^0a:be/, '42:01'),
      mtu: 1460,
      network: `projects/123456789012/networks/vpc${i}`,
      subnetmask: '255.255.240.0',
      targetInstanceIps: [],
    };
  });
  return { provider: 'gcp', paths: { [PATHS.gcpRoot]: JSON.stringify(doc) } };
}
