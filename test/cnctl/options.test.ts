// Global options: where the API is (--url or the daemon's config), --json anywhere on the line,
// --help at every level, --version.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VERSION } from '../../src/version.js';
import { cnctl, FIXTURES, startApi, type TestApi } from './support.js';

let api: TestApi;
let port: string;
beforeAll(async () => {
  api = await startApi(join(FIXTURES, 'ec2/three-enis'));
  port = new URL(api.url).port;
});
afterAll(() => api.close());

const configFile = (text: string) => {
  const path = join(mkdtempSync(join(tmpdir(), 'cnctl-config-')), 'cloud-network.toml');
  writeFileSync(path, text);
  return path;
};

describe('where the API is', () => {
  it.each([
    ['Listen', (p: string) => `[Network]\nListen = "127.0.0.1:${p}"\n`],
    ['Address and Port', (p: string) => `[Network]\nAddress = "127.0.0.1"\nPort = ${p}\n`],
    ['a wildcard Address, reached through loopback', (p: string) => `[Network]\nAddress = "0.0.0.0"\nPort = "${p}"\n`],
  ])('without --url, from the config: %s', async (_, text) => {
    const result = await cnctl(['status'], { CLOUD_NETWORK_CONFIG: configFile(text(port)) });
    expect(result.stderr).toBe('');
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toMatch(/^Provider: +ec2$/m);
  });

  it('the config address is the one named when nothing listens there', async () => {
    const result = await cnctl(['status'], { CLOUD_NETWORK_CONFIG: configFile('[Network]\nListen = "127.0.0.1:9"\n') });
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(/^error: cannot reach cloud-network at 127\.0\.0\.1:9: /);
  });

  it('--url wins over the config', async () => {
    const result = await cnctl(['--url', api.url, 'status'], { CLOUD_NETWORK_CONFIG: configFile('[Network]\nListen = "127.0.0.1:9"\n') });
    expect(result.exitCode).toBe(0);
  });

  it('sends a loopback Host and asks for JSON, whatever the URL names', async () => {
    const seen: IncomingHttpHeaders[] = [];
    const server = createServer((request, response) => {
      seen.push(request.headers);
      response.setHeader('Content-Type', 'application/json');
      response.end(JSON.stringify({ provider: 'ec2', interfaces: [] }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const serverPort = (server.address() as AddressInfo).port;
    try {
      for (const url of [`http://127.0.0.1:${serverPort}`, `http://localhost:${serverPort}/`]) {
        const result = await cnctl(['--url', url, 'status']);
        expect(result.exitCode).toBe(0);
      }
      expect(seen.map((headers) => [headers.host, headers.accept])).toEqual([
        [`localhost:${serverPort}`, 'application/json'],
        [`localhost:${serverPort}`, 'application/json'],
      ]);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('global options anywhere on the line', () => {
  it.each([
    [['--json', '--url', 'URL', 'status', 'system']],
    [['status', '--json', 'system', '--url', 'URL']],
    [['status', 'system', '--url=URL', '--json']],
  ])('%s', async (args) => {
    const result = await cnctl(args.map((arg) => arg.replace('URL', api.url)));
    expect(result.exitCode).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ 'instance-id': 'i-1234567890abcdef0' });
  });
});

describe('help and version', () => {
  it.each([
    [[], 'cnctl', ['status', 'plan', 'show']],
    [['status'], 'cnctl status', ['system', 'network']],
    [['status', 'system'], 'cnctl status system', []],
    [['status', 'network'], 'cnctl status network', []],
    [['plan'], 'cnctl plan', []],
    [['show'], 'cnctl show', ['ssh-keys', 'credentials', 'document', 'pkcs7', 'signature', 'rsa2048', 'project']],
    [['show', 'ssh-keys'], 'cnctl show ssh-keys', []],
    [['show', 'project'], 'cnctl show project', []],
  ])('%s --help', async (args, name, commands) => {
    for (const help of ['--help', '-h']) {
      const result = await cnctl([...args, help]);
      expect(result.exitCode).toBe(0);
      expect(result.stdout).toContain(`USAGE ${name} [OPTIONS]`);
      expect(result.stdout).toContain('--json');
      expect(result.stdout).toContain('--url=<URL>');
      for (const command of commands) expect(result.stdout).toMatch(new RegExp(`^ +${command} +\\S`, 'm'));
    }
  });

  it('--version prints the version', async () => {
    for (const flag of ['--version', '-v']) {
      const result = await cnctl([flag]);
      expect(result.exitCode).toBe(0);
      expect(result.stdout).toBe(`${VERSION}\n`);
    }
  });
});
