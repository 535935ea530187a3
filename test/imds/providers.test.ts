// The metadata clients against the mock IMDS over real HTTP on loopback: each cloud's
// protocol, the requests a refresh costs, and how bad answers are refused.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpTransport, ImdsError } from '../../src/imds/http.js';
import { createClient } from '../../src/imds/provider.js';
import { cloneFixture, editJson, loadFixture, PATHS, type Fixture } from '../support/fixture.js';
import { createMockImdsServer, type MockImdsOptions } from '../support/mock-imds.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

async function serve(fixture: Fixture, options: MockImdsOptions = {}) {
  const mock = createMockImdsServer(fixture, options);
  const port = await mock.listen(0, '127.0.0.1');
  const transport = new HttpTransport(`http://127.0.0.1:${port}`);
  cleanups.push(() => transport.close(), () => mock.close());
  return { mock, client: createClient(fixture.provider, transport) };
}

const macsOf = (metadata: { interfaces: { mac: string; key: number }[] }) => metadata.interfaces.map((nic) => [nic.key, nic.mac]);
const EC2_MACS = '/latest/meta-data/network/interfaces/macs/';

describe('EC2', () => {
  it('reads the network with an IMDSv2 token and only the keys it needs', async () => {
    const { mock, client } = await serve(loadFixture('ec2/three-enis'));
    const metadata = await client.fetchMetadata({ documents: false });
    expect(macsOf(metadata)).toEqual([
      [0, '0a:07:84:3d:6e:38'],
      [2, '0a:5d:3e:11:7c:9a'],
      [1, '0a:75:69:92:e2:16'],
    ]);
    const log = mock.log();
    expect(log[0]).toMatchObject({ method: 'PUT', path: '/latest/api/token' });
    expect(log[0]!.headers['x-aws-ec2-metadata-token-ttl-seconds']).toBe('21600');
    expect(log.slice(1).every((entry) => entry.headers['x-aws-ec2-metadata-token'])).toBe(true);
    // token + mac + listing + per MAC: device-number, network-card (404), network-card-index (404), local-ipv4s, subnet
    expect(log.length).toBeLessThanOrEqual(3 + 5 * 3);
    expect(log.some((entry) => entry.path === '/latest/meta-data/' || entry.path.endsWith('/ipv6s'))).toBe(false);
  });

  it('asks for a fresh token once the old one is refused', async () => {
    const { mock, client } = await serve(loadFixture('ec2/three-enis'));
    await client.fetchMetadata({ documents: false });
    mock.expireTokens();
    mock.resetLog();
    await client.fetchMetadata({ documents: false });
    expect(mock.log().filter((entry) => entry.method === 'PUT')).toHaveLength(1);
  });

  it.each([404, 405])('falls back to IMDSv1 when the token endpoint answers %i', async (status) => {
    const { mock, client } = await serve(loadFixture('ec2/three-enis'), { ec2: { tokenEndpointStatus: status } });
    await expect(client.fetchMetadata({ documents: false })).resolves.toHaveProperty('provider', 'ec2');
    expect(mock.log().filter((entry) => entry.method === 'GET' && entry.headers['x-aws-ec2-metadata-token'])).toEqual([]);
  });

  it('says the service is disabled when the token endpoint answers 403', async () => {
    const { client } = await serve(loadFixture('ec2/three-enis'), { ec2: { tokenEndpointStatus: 403 } });
    await expect(client.fetchMetadata({ documents: false })).rejects.toThrow(/answered 403: the instance metadata service is disabled/);
  });

  it('keys NICs by network card and device number', async () => {
    const { client } = await serve(loadFixture('ec2/two-cards'));
    expect((await client.fetchMetadata({ documents: false })).interfaces.map((nic) => nic.key).sort((a, b) => a - b)).toEqual([0, 1, 100]);
  });

  it('never lets two NICs share a table: the one that is not the top-level MAC is held back', async () => {
    const fixture = cloneFixture(loadFixture('ec2/three-enis'));
    fixture.paths[`${EC2_MACS}0a:5d:3e:11:7c:9a/device-number`] = '0';
    const { client } = await serve(fixture);
    const metadata = await client.fetchMetadata({ documents: false });
    expect(macsOf(metadata)).toEqual([
      [0, '0a:07:84:3d:6e:38'],
      [1, '0a:75:69:92:e2:16'],
    ]);
    expect(metadata.rejected).toEqual([{ mac: '0a:5d:3e:11:7c:9a', reason: expect.stringMatching(/NIC key 0/) }]);
  });

  it.each([
    ['device-number', 'abc'],
    ['subnet-ipv4-cidr-block', '172.31.32.0/33'],
    ['local-ipv4s', '999.1.1.1'],
    ['local-ipv4s', '2600:1f16:292:100::1'],
    ['local-ipv4s', ''],
  ])('holds back a NIC whose %s is %j and keeps the others', async (key, value) => {
    const fixture = cloneFixture(loadFixture('ec2/three-enis'));
    fixture.paths[`${EC2_MACS}0a:75:69:92:e2:16/${key}`] = value;
    const { client } = await serve(fixture);
    const metadata = await client.fetchMetadata({ documents: false });
    expect(metadata.interfaces.map((nic) => nic.mac)).not.toContain('0a:75:69:92:e2:16');
    expect(metadata.interfaces).toHaveLength(2);
    expect(metadata.rejected[0]).toMatchObject({ mac: '0a:75:69:92:e2:16' });
  });

  it('holds back a NIC whose key keeps failing while the others answer', async () => {
    const { mock, client } = await serve(loadFixture('ec2/three-enis'));
    mock.addFault({ kind: 'status', status: 500, path: `${EC2_MACS}0a:75:69:92:e2:16/local-ipv4s` });
    const metadata = await client.fetchMetadata({ documents: false });
    expect(metadata.interfaces).toHaveLength(2);
    expect(metadata.rejected[0]).toMatchObject({ mac: '0a:75:69:92:e2:16', reason: expect.stringMatching(/HTTP 500/) });
  });

  it('reads the documents: system facts, per-MAC display keys, identity and credentials', async () => {
    const { client } = await serve(loadFixture('ec2/three-enis'));
    const { documents } = await client.fetchMetadata({ documents: true });
    expect(documents.system).toMatchObject({ 'instance-id': 'i-1234567890abcdef0', 'instance-type': 't3.large', 'public-keys': { 'example-key': expect.stringMatching(/^ssh-rsa /) } });
    expect((documents.network as Record<string, unknown>)['0a:07:84:3d:6e:38']).toMatchObject({ 'interface-id': 'eni-0d6335689899ce9cc', 'public-ipv4s': ['18.218.219.181', '198.51.100.23'] });
    expect(Object.keys(documents.identity ?? {}).sort()).toEqual(['document', 'pkcs7', 'signature']);
    expect(documents.credentials).toMatchObject({ role: 'example-role', AccessKeyId: 'ASIAIOSFODNN7EXAMPLE' });
  });
});

describe('Azure', () => {
  it('reads one document with the Metadata header and normalizes MACs', async () => {
    const { mock, client } = await serve(loadFixture('azure/three-nics'));
    const metadata = await client.fetchMetadata({ documents: true });
    expect(macsOf(metadata)).toEqual([
      [0, '00:0d:3a:e7:99:b7'],
      [1, '00:0d:3a:e7:9b:59'],
      [2, '00:0d:3a:e7:a1:c2'],
    ]);
    expect(mock.log()).toHaveLength(1);
    expect(mock.log()[0]!.query).toBe('api-version=2021-02-01&format=json');
    expect(metadata.documents.system).not.toHaveProperty('userData');
  });

  it('retries 410 and 429', async () => {
    const { mock, client } = await serve(loadFixture('azure/three-nics'));
    mock.addFault({ kind: 'status', status: 410, count: 1 });
    mock.addFault({ kind: 'status', status: 429, count: 1 });
    await expect(client.fetchMetadata({ documents: true })).resolves.toHaveProperty('provider', 'azure');
    expect(mock.log()).toHaveLength(3);
  });

  it('refuses a document without network', async () => {
    const fixture = editJson(cloneFixture(loadFixture('azure/three-nics')), PATHS.azureInstance, (doc: Record<string, unknown>) => {
      delete doc.network;
    });
    const { client } = await serve(fixture);
    await expect(client.fetchMetadata({ documents: true })).rejects.toThrow('Azure metadata document has no network.interface list');
  });

  it.each([
    ['html', /is HTML/],
    ['empty', /is an empty body/],
    ['truncate', /not complete JSON/],
  ] as const)('refuses a %s answer', async (kind, message) => {
    const { mock, client } = await serve(loadFixture('azure/three-nics'));
    mock.addFault({ kind });
    await expect(client.fetchMetadata({ documents: true })).rejects.toThrow(message);
  });

  it('refuses a 50 MB answer without reading it all', async () => {
    const { mock, client } = await serve(loadFixture('azure/three-nics'));
    mock.addFault({ kind: 'huge', megabytes: 50 });
    await expect(client.fetchMetadata({ documents: true })).rejects.toThrow(/larger than 4 MiB/);
  });
});

describe('GCP', () => {
  it('reads the recursive root document, aliases and forwarded IPs as local routes', async () => {
    const { client } = await serve(loadFixture('gcp/two-nics-aliases'));
    const metadata = await client.fetchMetadata({ documents: true });
    expect(metadata.interfaces.map((nic) => [nic.mac, nic.addresses, nic.mtu, nic.localRoutes])).toEqual([
      ['42:01:0a:00:00:02', ['10.0.0.2'], 1460, ['10.0.0.128/28', '10.0.0.200/32', '34.120.10.5/32']],
      ['42:01:0a:00:01:02', ['10.0.1.2'], 1460, ['10.0.1.64/26']],
    ]);
    expect(metadata.documents.system).toMatchObject({ name: 'instance-2', project: { projectId: 'example-project' } });
  });

  it('returns from wait_for_change as soon as the document changes', async () => {
    const fixture = loadFixture('gcp/two-nics-aliases');
    const { mock, client } = await serve(fixture);
    await client.fetchMetadata({ documents: true });
    const changed = client.waitForChange!();
    await expect.poll(() => mock.state().waiting).toBe(1);
    mock.setFixture(editJson(cloneFixture(fixture), PATHS.gcpRoot, (doc: { instance: { networkInterfaces: { forwardedIps: string[] }[] } }) => {
      doc.instance.networkInterfaces[1]!.forwardedIps = ['34.120.10.9'];
    }));
    expect((await changed).interfaces[1]!.localRoutes).toContain('34.120.10.9/32');
  });

  it('refuses an answer without Metadata-Flavor: Google', async () => {
    const impostor = http.createServer((_req, res) => res.end(loadFixture('gcp/two-nics-aliases').paths[PATHS.gcpRoot]));
    await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve));
    const transport = new HttpTransport(`http://127.0.0.1:${(impostor.address() as AddressInfo).port}`);
    cleanups.push(() => transport.close(), () => new Promise<void>((resolve) => impostor.close(() => resolve())));
    await expect(createClient('gcp', transport).fetchMetadata({ documents: true })).rejects.toThrow(/lacks the Metadata-Flavor: Google header/);
  });
});

describe('HTTP', () => {
  it('reports a refused connection in one line after its retries', async () => {
    const transport = new HttpTransport('http://127.0.0.1:9');
    cleanups.push(() => transport.close());
    const error = await createClient('azure', transport).fetchMetadata({ documents: true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ImdsError);
    expect((error as Error).message).toMatch(/^metadata request GET http:\/\/127\.0\.0\.1:9\/metadata\/instance.* failed: connection refused \(after 3 attempts\)$/);
  });
});

describe('GCP instance ids', () => {
  it('keeps all 64 bits of the instance id', async () => {
    const fixture = cloneFixture(loadFixture('gcp/two-nics-aliases'));
    fixture.paths[PATHS.gcpRoot] = fixture.paths[PATHS.gcpRoot]!.replace(/"id":\s*\d+/, '"id":8849188986350617823');
    const { client } = await serve(fixture);
    expect((await client.fetchMetadata({ documents: true })).documents.system).toMatchObject({ id: '8849188986350617823' });
  });
});

describe('EC2 answers that cannot be trusted', () => {
  it('holds back a NIC claiming key 0 while the primary entry is unreadable, instead of giving it the primary table', async () => {
    const fixture = cloneFixture(loadFixture('ec2/three-enis'));
    fixture.paths[`${EC2_MACS}0a:07:84:3d:6e:38/local-ipv4s`] = '172.31.44.13\n172.31.45.70x';
    fixture.paths[`${EC2_MACS}0a:75:69:92:e2:16/device-number`] = '0';
    const { client } = await serve(fixture);
    const metadata = await client.fetchMetadata({ documents: false });
    expect(macsOf(metadata)).toEqual([[2, '0a:5d:3e:11:7c:9a']]);
    expect(metadata.rejected.map((entry) => entry.mac).sort()).toEqual(['0a:07:84:3d:6e:38', '0a:75:69:92:e2:16']);
  });

  it('refuses a MAC listing without the primary interface', async () => {
    const fixture = cloneFixture(loadFixture('ec2/three-enis'));
    fixture.paths[EC2_MACS] = '0a:5d:3e:11:7c:9a/\n0a:75:69:92:e2:16/';
    const { client } = await serve(fixture);
    await expect(client.fetchMetadata({ documents: false })).rejects.toThrow(/lacks the primary interface 0a:07:84:3d:6e:38/);
  });

  it('holds back a NIC whose subnet is implausibly large', async () => {
    const fixture = cloneFixture(loadFixture('ec2/three-enis'));
    fixture.paths[`${EC2_MACS}0a:75:69:92:e2:16/subnet-ipv4-cidr-block`] = '128.0.0.0/1';
    const { client } = await serve(fixture);
    const metadata = await client.fetchMetadata({ documents: false });
    expect(metadata.rejected).toEqual([{ mac: '0a:75:69:92:e2:16', reason: expect.stringMatching(/not an IPv4 subnet of \/8 to \/30/) }]);
  });

  it('still configures the network when a display-only key fails', async () => {
    const { mock, client } = await serve(loadFixture('ec2/three-enis'));
    mock.addFault({ kind: 'status', status: 500, path: '/latest/meta-data/iam/security-credentials/' });
    const metadata = await client.fetchMetadata({ documents: true });
    expect(metadata.interfaces).toHaveLength(3);
    expect(metadata.documents.credentials).toBeUndefined();
    expect(metadata.documents.system).toMatchObject({ 'instance-id': 'i-1234567890abcdef0' });
  });
});

describe('GCP without ETags', () => {
  it('stops waiting for changes instead of spinning', async () => {
    const body = loadFixture('gcp/two-nics-aliases').paths[PATHS.gcpRoot];
    let requests = 0;
    const server = http.createServer((_req, res) => {
      requests++;
      res.setHeader('Metadata-Flavor', 'Google');
      res.end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const transport = new HttpTransport(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    cleanups.push(() => transport.close(), () => new Promise<void>((resolve) => server.close(() => resolve())));
    const client = createClient('gcp', transport);
    await client.fetchMetadata({ documents: true });
    await expect(client.waitForChange!()).rejects.toThrow(/carry no ETag/);
    expect(requests).toBe(1);
  });
});
