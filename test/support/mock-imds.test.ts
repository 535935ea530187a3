// The mock IMDS must enforce each cloud's protocol, or the end-to-end tests would accept a
// client that real clouds reject. These tests run the bundled mock process on the host's
// loopback (no namespace needed) and drive it through its control socket.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadFixture, PATHS } from './fixture.js';
import { httpRequest, HttpTimeoutError, type HttpResponse } from './http.js';
import { startMockImds, type MockImds } from './mock-imds-process.js';

const EC2 = loadFixture('ec2/three-enis');
const AZURE = loadFixture('azure/three-nics');
const GCP = loadFixture('gcp/two-nics-aliases');
const MACS = PATHS.ec2Macs;
const TTL = 'X-aws-ec2-metadata-token-ttl-seconds';

function get(m: MockImds, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<HttpResponse> {
  return httpRequest({ url: `${m.endpoint}${path}`, method, headers, timeoutMs: 5000 });
}

describe('ec2 (IMDSv2)', () => {
  let m: MockImds;
  beforeAll(async () => {
    m = await startMockImds({ fixture: EC2 });
  });
  afterAll(() => m?.stop());

  const token = async (ttl = '21600'): Promise<string> => {
    const r = await get(m, '/latest/api/token', { [TTL]: ttl }, 'PUT');
    expect(r.status).toBe(200);
    return r.body;
  };

  test('token PUT requires a TTL of 1..21600 and echoes it', async () => {
    for (const bad of [undefined, '0', '21601', 'abc', '-5']) {
      const r = await get(m, '/latest/api/token', bad === undefined ? {} : { [TTL]: bad }, 'PUT');
      expect(r.status, `TTL ${bad}`).toBe(400);
      expect(r.body).toContain('<h1>400 - Bad Request</h1>');
    }
    const ok = await get(m, '/latest/api/token', { [TTL]: '120' }, 'PUT');
    expect(ok.status).toBe(200);
    expect(ok.headers[TTL.toLowerCase()]).toBe('120');
    expect(ok.body).toMatch(/^[A-Za-z0-9_-]{40,}$/);
  });

  test('token PUT with X-Forwarded-For is forbidden; versioned token path is forbidden; GET on it not allowed', async () => {
    expect((await get(m, '/latest/api/token', { [TTL]: '60', 'X-Forwarded-For': '10.0.0.1' }, 'PUT')).status).toBe(403);
    expect((await get(m, '/2021-03-23/api/token', { [TTL]: '60' }, 'PUT')).status).toBe(403);
    expect((await get(m, '/latest/api/token')).status).toBe(405);
  });

  test('GET without a token or with an unknown token is 401; with a token it serves the fixture', async () => {
    const path = `${MACS}0a:07:84:3d:6e:38/local-ipv4s`;
    const none = await get(m, path);
    expect(none.status).toBe(401);
    expect(none.body).toContain('<title>401 - Unauthorized</title>');
    expect((await get(m, path, { 'X-aws-ec2-metadata-token': 'bogus' })).status).toBe(401);
    const ok = await get(m, path, { 'X-aws-ec2-metadata-token': await token() });
    expect(ok).toMatchObject({ status: 200, body: EC2.paths[path] });
  });

  test('directories answer with and without the slash; notFound and unknown paths are 404 with the AWS body', async () => {
    const t = { 'X-aws-ec2-metadata-token': await token() };
    expect((await get(m, MACS.slice(0, -1), t)).body).toBe(EC2.paths[MACS]);
    for (const p of [EC2.notFound![0]!, '/latest/meta-data/no-such-key']) {
      const r = await get(m, p, t);
      expect(r.status, p).toBe(404);
      expect(r.body).toContain('<h1>404 - Not Found</h1>');
      expect(r.body.startsWith('<?xml version="1.0" encoding="iso-8859-1"?>')).toBe(true);
    }
  });

  test('HEAD answers headers only; other methods are 405', async () => {
    const t = { 'X-aws-ec2-metadata-token': await token() };
    const head = await get(m, '/latest/meta-data/mac', t, 'HEAD');
    expect(head).toMatchObject({ status: 200, body: '' });
    expect(head.headers['content-length']).toBe(String(EC2.paths['/latest/meta-data/mac']!.length));
    expect((await get(m, '/latest/meta-data/mac', t, 'POST')).status).toBe(405);
    expect((await get(m, '/latest/meta-data/mac', { ...t, [TTL]: '60' }, 'PUT')).status).toBe(405);
  });

  test('a token expires after its TTL (mock clock) and on forced expiry', async () => {
    const short = await token('60');
    const long = await token('21600');
    await m.advanceClock(61);
    expect((await get(m, '/latest/meta-data/mac', { 'X-aws-ec2-metadata-token': short })).status).toBe(401);
    expect((await get(m, '/latest/meta-data/mac', { 'X-aws-ec2-metadata-token': long })).status).toBe(200);
    await m.expireTokens();
    expect((await get(m, '/latest/meta-data/mac', { 'X-aws-ec2-metadata-token': long })).status).toBe(401);
    expect((await m.state()).liveTokens).toBe(0);
  });

  test('IMDSv1 options: allowImdsV1 accepts tokenless GET; a 404/405 token endpoint means IMDSv1 only', async () => {
    const v1 = await startMockImds({ fixture: EC2, options: { ec2: { allowImdsV1: true } } });
    try {
      expect((await get(v1, '/latest/meta-data/mac')).status).toBe(200);
      expect((await get(v1, '/latest/meta-data/mac', { 'X-aws-ec2-metadata-token': 'bogus' })).status).toBe(401);
      for (const status of [404, 405]) {
        await v1.setOptions({ ec2: { allowImdsV1: false, tokenEndpointStatus: status } });
        expect((await get(v1, '/latest/api/token', { [TTL]: '60' }, 'PUT')).status).toBe(status);
        expect((await get(v1, '/latest/meta-data/mac')).body).toBe(EC2.paths['/latest/meta-data/mac']);
      }
      await v1.setOptions({ ec2: { tokenEndpointStatus: null } });
      expect((await get(v1, '/latest/meta-data/mac')).status).toBe(401);
    } finally {
      await v1.stop();
    }
  });
});

describe('azure', () => {
  let m: MockImds;
  beforeAll(async () => {
    m = await startMockImds({ fixture: AZURE });
  });
  afterAll(() => m?.stop());
  const doc = '/metadata/instance?api-version=2021-02-01&format=json';

  test('requires Metadata: true with the recorded error body', async () => {
    for (const headers of [{}, { Metadata: 'false' }] as Record<string, string>[]) {
      const r = await get(m, doc, headers);
      expect(r.status).toBe(400);
      expect(r.body).toBe('{ "error": "Bad request: . Required metadata header not specified" }');
    }
  });

  test('requires a known api-version and rejects X-Forwarded-For and duplicate parameters', async () => {
    for (const q of ['/metadata/instance', '/metadata/instance?api-version=1999-01-01', `${doc}&api-version=2021-02-01`]) {
      const r = await get(m, q, { Metadata: 'true' });
      expect(r.status, q).toBe(400);
    }
    expect(JSON.parse((await get(m, '/metadata/instance', { Metadata: 'true' })).body).error).toMatch(/api-version is invalid/);
    expect((await get(m, doc, { Metadata: 'true', 'X-Forwarded-For': '1.2.3.4' })).status).toBe(400);
  });

  test('serves the instance document, sub-paths and text leaves; only GET', async () => {
    const r = await get(m, doc, { Metadata: 'true' });
    expect(r).toMatchObject({ status: 200, body: AZURE.paths['/metadata/instance'] });
    expect(r.headers['content-type']).toMatch(/^application\/json/);
    const leaf = '/metadata/instance/network/interface/0/macAddress?api-version=2021-02-01';
    expect((await get(m, `${leaf}&format=text`, { Metadata: 'true' })).body).toBe('000D3AE799B7');
    expect((await get(m, leaf, { Metadata: 'true' })).status).toBe(400);
    expect((await get(m, '/metadata/instance/network/interface/9?api-version=2021-02-01', { Metadata: 'true' })).status).toBe(404);
    expect((await get(m, doc, { Metadata: 'true' }, 'POST')).status).toBe(405);
    expect((await get(m, doc, { Metadata: 'true' }, 'PUT')).status).toBe(405);
  });
});

describe('gcp', () => {
  let m: MockImds;
  beforeAll(async () => {
    m = await startMockImds({ fixture: GCP });
  });
  afterAll(() => m?.stop());
  const root = '/computeMetadata/v1/?recursive=true';
  const flavor = { 'Metadata-Flavor': 'Google' };
  const md5tail = (s: string): string => createHash('md5').update(s).digest('hex').slice(-16);

  test('requires Metadata-Flavor: Google (403 with the recorded text)', async () => {
    for (const headers of [{}, { 'Metadata-Flavor': 'google' }] as Record<string, string>[]) {
      const r = await get(m, '/computeMetadata/v1/instance/name', headers);
      expect(r.status).toBe(403);
      expect(r.body).toBe(
        'Your client does not have permission to get URL <code>/computeMetadata/v1/instance/name</code> from this server. Missing Metadata-Flavor:Google header.',
      );
    }
    expect((await get(m, root, { ...flavor, 'X-Forwarded-For': '1.2.3.4' })).status).toBe(403);
  });

  test('serves the recursive root with Metadata-Flavor, Server and ETag headers', async () => {
    const r = await get(m, root, flavor);
    expect(r).toMatchObject({ status: 200, body: GCP.paths['/computeMetadata/v1/'] });
    expect(r.headers['metadata-flavor']).toBe('Google');
    expect(r.headers['server']).toBe('Metadata Server for VM');
    expect(r.headers['etag']).toBe(md5tail(r.body));
  });

  test('derives leaves and listings (kebab-case paths) from the root document', async () => {
    const nic = '/computeMetadata/v1/instance/network-interfaces/';
    expect((await get(m, `${nic}0/ip`, flavor)).body).toBe('10.0.0.2');
    expect((await get(m, nic, flavor)).body).toBe('0/\n1/\n');
    expect((await get(m, `${nic}0/ip-aliases/`, flavor)).body).toBe('0\n1\n');
    expect(JSON.parse((await get(m, `${nic}?recursive=true`, flavor)).body)).toHaveLength(2);
    expect((await get(m, `${nic}7/ip`, flavor)).status).toBe(404);
  });

  test('wait_for_change answers at once when last_etag is stale', async () => {
    const started = Date.now();
    const r = await get(m, `${root}&wait_for_change=true&last_etag=0000000000000000`, flavor);
    expect(r.status).toBe(200);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  test('wait_for_change hangs until the document changes', async () => {
    const first = await get(m, root, flavor);
    const etag = String(first.headers['etag']);
    const waiting = get(m, `${root}&wait_for_change=true&last_etag=${etag}&timeout_sec=30`, flavor);
    // Await the waiter being registered (a condition, not a sleep), then change the document.
    await m.waitForRequest((e) => e.query.includes('wait_for_change'));
    for (let i = 0; (await m.state()).waiting === 0; i++) {
      if (i > 500) throw new Error('waiter never registered');
      await new Promise((r) => setTimeout(r, 10));
    }
    const changed = JSON.parse(first.body) as { instance: { hostname: string } };
    changed.instance.hostname = 'changed.example.internal';
    await m.patch({ paths: { '/computeMetadata/v1/': JSON.stringify(changed) } });
    const r = await waiting;
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).instance.hostname).toBe('changed.example.internal');
    expect(r.headers['etag']).not.toBe(etag);
    await m.setFixture(GCP);
  });

  test('wait_for_change returns the unchanged value after timeout_sec', async () => {
    const first = await get(m, root, flavor);
    const started = Date.now();
    const r = await get(m, `${root}&wait_for_change=true&last_etag=${String(first.headers['etag'])}&timeout_sec=1`, flavor);
    expect(r).toMatchObject({ status: 200, body: first.body });
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });
});

describe('fault injection', () => {
  let m: MockImds;
  beforeAll(async () => {
    m = await startMockImds({ fixture: AZURE });
  });
  afterAll(() => m?.stop());
  const doc = '/metadata/instance?api-version=2021-02-01&format=json';
  const h = { Metadata: 'true' };
  const good = AZURE.paths['/metadata/instance']!;

  test('status for the next N requests, then normal again', async () => {
    await m.addFault({ kind: 'status', status: 503, count: 2 });
    expect((await get(m, doc, h)).status).toBe(503);
    expect((await get(m, doc, h)).status).toBe(503);
    expect((await get(m, doc, h)).status).toBe(200);
    expect(await m.faults()).toEqual([]);
  });

  test('status until cleared, limited to a path or a regex', async () => {
    await m.addFault({ kind: 'status', status: 410, path: '/metadata/instance' });
    await m.addFault({ kind: 'status', status: 429, pathRegex: '^/metadata/instance/net' });
    expect((await get(m, doc, h)).status).toBe(410);
    expect((await get(m, doc, h)).status).toBe(410);
    expect((await get(m, '/metadata/instance/network?api-version=2021-02-01', h)).status).toBe(429);
    expect((await get(m, '/metadata/versions', h)).status).toBe(200);
    await m.clearFaults();
    expect((await get(m, doc, h)).status).toBe(200);
  });

  test('a fault can be removed by id', async () => {
    const id = await m.addFault({ kind: 'status', status: 500 });
    expect((await get(m, doc, h)).status).toBe(500);
    await m.removeFault(id);
    expect((await get(m, doc, h)).status).toBe(200);
  });

  test('hang: no headers ever; the log shows the pending request', async () => {
    await m.addFault({ kind: 'hang', count: 1 });
    await m.resetLog();
    await expect(httpRequest({ url: `${m.endpoint}${doc}`, headers: h, timeoutMs: 300 })).rejects.toBeInstanceOf(HttpTimeoutError);
    const [entry] = await m.log();
    expect(entry).toMatchObject({ path: '/metadata/instance', status: null, fault: 'hang' });
    expect((await get(m, doc, h)).status).toBe(200);
  });

  test('slow body arrives intact after the delay; latency delays the answer', async () => {
    await m.addFault({ kind: 'slow', ms: 300, count: 1 });
    let started = Date.now();
    expect((await get(m, doc, h)).body).toBe(good);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    await m.addFault({ kind: 'latency', ms: 200, count: 1 });
    started = Date.now();
    expect((await get(m, doc, h)).body).toBe(good);
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
  });

  test('html, empty, truncated and huge bodies', async () => {
    await m.addFault({ kind: 'html', count: 1 });
    const html = await get(m, doc, h);
    expect(html.status).toBe(200);
    expect(html.headers['content-type']).toBe('text/html');
    expect(html.body).toMatch(/^<!DOCTYPE html>/);

    await m.addFault({ kind: 'empty', count: 1 });
    expect(await get(m, doc, h)).toMatchObject({ status: 200, body: '' });

    await m.addFault({ kind: 'truncate', count: 1 });
    expect((await get(m, doc, h)).body).toBe(good.slice(0, Math.floor(Buffer.byteLength(good) / 2)));

    await m.addFault({ kind: 'truncate', abort: true, count: 1 });
    await expect(get(m, doc, h)).rejects.toThrow();

    await m.addFault({ kind: 'huge', megabytes: 3, count: 1 });
    expect((await get(m, doc, h)).body.length).toBe(3 * 1024 * 1024);
  });

  test('close: the connection drops without an answer', async () => {
    await m.addFault({ kind: 'close', count: 1 });
    await expect(get(m, doc, h)).rejects.toThrow(/socket hang up|ECONNRESET/);
    expect((await get(m, doc, h)).status).toBe(200);
  });

  test('method filter and fault precedence: latency adds up, the first terminal fault wins', async () => {
    await m.addFault({ kind: 'status', status: 500, method: 'POST', count: 1 });
    expect((await get(m, doc, h)).status).toBe(200);
    await m.clearFaults();
    await m.addFault({ kind: 'latency', ms: 100, count: 1 });
    await m.addFault({ kind: 'status', status: 429, count: 1 });
    await m.addFault({ kind: 'status', status: 500, count: 1 });
    const started = Date.now();
    expect((await get(m, doc, h)).status).toBe(429);
    expect(Date.now() - started).toBeGreaterThanOrEqual(95);
    expect((await get(m, doc, h)).status).toBe(500);
    expect(await m.faults()).toEqual([]);
  });
});

describe('control API', () => {
  test('request log records method, path, query, headers and status; reset empties it', async () => {
    const m = await startMockImds({ fixture: EC2 });
    try {
      await get(m, '/latest/api/token', { [TTL]: '60' }, 'PUT');
      await get(m, '/latest/meta-data/mac?x=1');
      const log = await m.log();
      expect(log).toHaveLength(2);
      expect(log[0]).toMatchObject({ method: 'PUT', path: '/latest/api/token', query: '', status: 200, headers: { [TTL.toLowerCase()]: '60' } });
      expect(log[1]).toMatchObject({ method: 'GET', path: '/latest/meta-data/mac', query: 'x=1', status: 401 });
      expect(typeof log[1]!.time).toBe('number');
      expect(await m.log(log[0]!.seq)).toHaveLength(1);
      await m.resetLog();
      expect(await m.log()).toEqual([]);
    } finally {
      await m.stop();
    }
  });

  test('metadata can be replaced and patched at runtime', async () => {
    const m = await startMockImds({ fixture: EC2, options: { ec2: { allowImdsV1: true } } });
    try {
      await m.patch({ paths: { '/latest/meta-data/mac': null, '/latest/meta-data/extra': 'x' } });
      expect((await get(m, '/latest/meta-data/mac')).status).toBe(404);
      expect((await get(m, '/latest/meta-data/extra')).body).toBe('x');
      await m.patch({ notFound: ['/latest/meta-data/extra'] });
      expect((await get(m, '/latest/meta-data/extra')).status).toBe(404);
      await m.setFixture(EC2);
      expect((await get(m, '/latest/meta-data/mac')).body).toBe(EC2.paths['/latest/meta-data/mac']);
      await expect(m.setFixture(GCP)).rejects.toThrow(/provider/);
    } finally {
      await m.stop();
    }
  });

  test('stop ends the process and is idempotent', async () => {
    const m = await startMockImds({ fixture: GCP });
    const pid = m.pid!;
    await m.stop();
    await m.stop();
    expect(() => process.kill(pid, 0)).toThrow();
  });
});
