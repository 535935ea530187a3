// Every failure cnctl reports: one line on stderr, nothing on stdout, exit 1 (2 for usage).
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cnctl, FIXTURES, startApi, startApiWithoutMetadata, type TestApi } from './support.js';

/** Asserts a one-line `error: ...` failure with this exit code and returns the message. */
function failure(result: Awaited<ReturnType<typeof cnctl>>, exitCode: number): string {
  expect(result.stdout).toBe('');
  expect(result.exitCode).toBe(exitCode);
  expect(result.stderr).toMatch(/^error: [^\n]+\n$/);
  return result.stderr.slice('error: '.length, -1);
}

const listening = (server: Server | HttpServer) =>
  new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
const closed = (server: Server | HttpServer) => new Promise((resolve) => server.close(resolve));

describe('daemon not reachable', () => {
  it.each([['status'], ['status', 'system'], ['status', 'network'], ['plan'], ['show', 'ssh-keys'], ['--json', 'status']])(
    '%s: connection refused names the address and the service',
    async (...args) => {
      // A port that was just free: nothing listens on it.
      const server = createServer();
      const port = await listening(server);
      await closed(server);
      const message = failure(await cnctl(['--url', `http://127.0.0.1:${port}`, ...args]), 1);
      expect(message).toBe(`cannot reach cloud-network at 127.0.0.1:${port}: connection refused; is the service running? systemctl status cloud-network`);
    },
  );

  it('gives up on a daemon that accepts but never answers', async () => {
    const sockets: Socket[] = [];
    const server = createServer((socket) => sockets.push(socket));
    const port = await listening(server);
    try {
      const started = Date.now();
      const message = failure(await cnctl(['--url', `http://127.0.0.1:${port}`, 'status']), 1);
      expect(message).toBe(`cannot reach cloud-network at 127.0.0.1:${port}: no answer within 5 s; is the service running? systemctl status cloud-network`);
      expect(Date.now() - started).toBeGreaterThanOrEqual(4900);
    } finally {
      for (const socket of sockets) socket.destroy();
      await closed(server);
    }
  });

  it('says when what answers is not cloud-network', async () => {
    const server = createHttpServer((_, response) => response.end('<html>hello</html>'));
    const port = await listening(server);
    try {
      const message = failure(await cnctl(['--url', `http://127.0.0.1:${port}`, 'status']), 1);
      expect(message).toBe(`cloud-network at 127.0.0.1:${port} answered /api/v1/status with HTTP 200 and no JSON; is it cloud-network?`);
    } finally {
      await closed(server);
    }
  });
});

describe('API errors print the API message', () => {
  let waiting: TestApi;
  let ec2: TestApi;
  beforeAll(async () => {
    waiting = await startApiWithoutMetadata('gcp');
    ec2 = await startApi(join(FIXTURES, 'ec2/three-enis'));
  });
  afterAll(async () => {
    await waiting.close();
    await ec2.close();
  });

  it.each([
    [['status', 'system'], 'the daemon has not read the metadata yet; cnctl status (/api/v1/status) shows why'],
    [['status', 'network'], 'the daemon has not read the metadata yet; cnctl status (/api/v1/status) shows why'],
    [['show', 'project'], 'the daemon has not read the metadata yet; cnctl status (/api/v1/status) shows why'],
    [['plan'], 'the daemon has not read the metadata yet, so there is nothing to plan; cnctl status (/api/v1/status) shows why'],
    [['--json', 'plan'], 'the daemon has not read the metadata yet, so there is nothing to plan; cnctl status (/api/v1/status) shows why'],
  ])('before the first metadata read: %s', async (args, message) => {
    expect(failure(await cnctl(['--url', waiting.url, ...args]), 1)).toBe(message);
  });

  it('a document the metadata service did not provide', async () => {
    expect(failure(await cnctl(['--url', ec2.url, 'show', 'rsa2048']), 1)).toBe('the metadata service did not provide rsa2048');
  });
});

describe('commands of another cloud', () => {
  const apis: Record<string, TestApi> = {};
  beforeAll(async () => {
    apis.ec2 = await startApi(join(FIXTURES, 'ec2/three-enis'));
    apis.azure = await startApi(join(FIXTURES, 'azure/three-nics'));
    apis.gcp = await startApi(join(FIXTURES, 'gcp/two-nics-aliases'));
  });
  afterAll(async () => {
    await Promise.all(Object.values(apis).map((api) => api.close()));
  });

  it.each([
    ['gcp', 'credentials', 'EC2', 'GCP'],
    ['gcp', 'document', 'EC2', 'GCP'],
    ['gcp', 'pkcs7', 'EC2', 'GCP'],
    ['gcp', 'signature', 'EC2', 'GCP'],
    ['gcp', 'rsa2048', 'EC2', 'GCP'],
    ['azure', 'credentials', 'EC2', 'Azure'],
    ['azure', 'document', 'EC2', 'Azure'],
    ['ec2', 'project', 'GCP', 'EC2'],
    ['azure', 'project', 'GCP', 'Azure'],
  ])('on %s, show %s says it needs %s', async (cloud, what, needed, actual) => {
    for (const json of [[], ['--json']]) {
      const message = failure(await cnctl(['--url', apis[cloud]!.url, ...json, 'show', what]), 1);
      expect(message).toBe(`show ${what} is available on ${needed} only; this is ${actual}`);
    }
  });
});

describe('usage errors exit 2', () => {
  it.each([
    [[], 'cnctl needs a command: status, plan, show; see cnctl --help'],
    [['show'], 'cnctl show needs a command: ssh-keys, credentials, document, pkcs7, signature, rsa2048, project; see cnctl show --help'],
    [['bogus'], 'unknown command "bogus" for cnctl: use status, plan, show; see cnctl --help'],
    [['status', 'bogus'], 'unknown command "bogus" for cnctl status: use system, network; see cnctl status --help'],
    [['status', 'system', 'extra'], 'unexpected argument "extra"; see cnctl status system --help'],
    [['--jsn', 'status'], 'unknown option --jsn; see cnctl status --help'],
    [['plan', '--version'], 'unknown option --version; see cnctl plan --help'],
    [['--url', 'ftp://127.0.0.1:5209', 'status'], '--url "ftp://127.0.0.1:5209" is not an http:// URL such as http://127.0.0.1:5209'],
    [['--url', '127.0.0.1:5209', 'status'], '--url "127.0.0.1:5209" is not an http:// URL such as http://127.0.0.1:5209'],
    [['status', '--url'], '--url needs a value such as http://127.0.0.1:5209'],
  ])('%s', async (args, message) => {
    expect(failure(await cnctl(args), 2)).toBe(message);
  });

  it('an explicit config file that does not exist', async () => {
    const message = failure(await cnctl(['status'], { CLOUD_NETWORK_CONFIG: '/nonexistent/cloud-network.toml' }), 2);
    expect(message).toBe('cannot read config /nonexistent/cloud-network.toml: no such file; give the API address with --url');
  });
});
