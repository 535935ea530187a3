// Issue 6, hostile configuration and hostile API clients, plus two instances at once.
// Config: the CLI answers every bad file with one line and the SPEC §2 exit code (unit-level
// parsing is in test/unit/config.test.ts). API: the daemon serves 127.0.0.1:5209 inside the
// namespace; a small node client runs there too (`world.exec(['node', '-e', ...])`).
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, test, type ExpectStatic } from 'vitest';
import { checkConfigured, snapshotDelta } from '../support/assertions.js';
import { cloneFixture, editJson, loadFixture, PATHS, type Fixture } from '../support/fixture.js';
import type { KernelSnapshot } from '../support/kernel.js';
import { BIN, createWorld, describeRun, runCloudNetwork, startCloudNetwork, type Daemon, type EnvOverrides, type RunResult, type World } from '../support/world.js';

// ---------------------------------------------------------------------------------------------
// Local helpers

const nonEmpty = (text: string): string[] => text.split('\n').filter((line) => line.trim() !== '');
const errorLines = (text: string): string[] => nonEmpty(text).filter((line) => line.startsWith('error:'));
/** Everything the program said, without the test machine's "no cloud-network user, running as root". */
const said = (text: string): string[] => nonEmpty(text).filter((line) => !/user cloud-network does not exist/.test(line));
const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const tempDirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cnh-cfg-'));
  chmodSync(dir, 0o755);
  tempDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function configFile(toml: string, mode = 0o644): string {
  const path = join(tempDir(), 'cloud-network.toml');
  writeFileSync(path, toml, { mode });
  chmodSync(path, mode);
  return path;
}

const NOBODY = ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all'];

/** `ip netns exec VM [...wrapper] BIN ARGS` with the world's environment plus `env`. */
async function runIn(world: World, wrapper: string[], args: string[], env: EnvOverrides = {}): Promise<RunResult> {
  const started = Date.now();
  const r = await execa('ip', ['netns', 'exec', world.name, ...wrapper, BIN, ...args], { env: world.env(env), extendEnv: false, reject: false, timeout: 60_000 });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr), durationMs: Date.now() - started, timedOut: r.timedOut };
}

/**
 * The world's snapshot without the marker rules (31xxx from 192.0.2.254) that a monitor of
 * another test running concurrently in the same world adds and deletes.
 */
async function stableSnapshot(world: World): Promise<KernelSnapshot> {
  const snap = await world.snapshot();
  return { ...snap, rules: snap.rules.filter((rule) => !/^31\d{3}: from 192\.0\.2\.254 lookup 31\d{3}$/.test(rule)) };
}

/** Exit code (or signal) of a daemon that is expected to stop by itself, once its output is all read. */
const closed = (d: Daemon): Promise<number | string> =>
  new Promise((resolve) => d.child.once('close', (code, signal) => resolve(code ?? signal ?? -1)));

const lastSeq = async (world: World): Promise<number> => Math.max(0, ...(await world.mock.log()).map((e) => e.seq));

/** Polls `check` until it returns [] (no problems); throws with the last problems after `timeoutMs`. Usable in hooks. */
async function until(check: () => Promise<string[]>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const problems = await check();
    if (problems.length === 0) return;
    if (Date.now() > deadline) throw new Error(`still not there after ${timeoutMs} ms:\n${problems.join('\n')}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A world converged by a daemon, its first metadata documents written. */
async function daemonWorld(fixture: Fixture, env: EnvOverrides = {}, config?: string): Promise<{ world: World; daemon: Daemon }> {
  const world = await createWorld({ fixture, dhcp: true, foreign: true, ...(config === undefined ? {} : { config }) });
  const daemon = startCloudNetwork(world, [], env);
  try {
    await daemon.waitForOutput(/API on http:\/\/127\.0\.0\.1:5209/, 20_000);
    await until(() => checkConfigured(world), 20_000);
    await until(async () => (readdirSync(world.stateDir).includes('system') ? [] : ['no state file "system" yet']), 10_000);
  } catch (e) {
    await world.destroy();
    throw new Error(`${(e as Error).message}\ndaemon output:\n${daemon.output()}`);
  }
  return { world, daemon };
}

// The API client, run inside the VM namespace. Jobs run in order; each yields one result.
//   {kind:'raw', text, timeoutMs?}            -> {status, head, body, end}
//   {kind:'get', path}                         -> {status, body}
//   {kind:'many', count, paths}                -> {statuses}          (count concurrent GETs)
//   {kind:'slowloris', slow, count, path}      -> {statuses, slowOpen} (slow clients hold half headers)
const CLIENT = String.raw`
const net = require('node:net');
const http = require('node:http');
const [PORT, HOST] = [5209, '127.0.0.1'];
function raw(text, timeoutMs = 5000) {
  return new Promise((resolve) => {
    const socket = net.connect(PORT, HOST);
    let data = Buffer.alloc(0);
    let settled = false;
    const done = (end) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const text = data.toString('utf8');
      const cut = text.indexOf('\r\n\r\n');
      const head = cut < 0 ? text : text.slice(0, cut);
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      resolve({ status: status ? Number(status[1]) : null, head, body: cut < 0 ? '' : text.slice(cut + 4), end });
    };
    const timer = setTimeout(() => done('timeout'), timeoutMs);
    socket.on('data', (d) => (data = Buffer.concat([data, d])));
    socket.on('end', () => done('end'));
    socket.on('close', () => done('close'));
    socket.on('error', (e) => done('error ' + e.code));
    socket.write(text);
  });
}
function get(path) {
  return new Promise((resolve) => {
    const req = http.get({ host: HOST, port: PORT, path, agent: false, timeout: 20000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d) => (body += d)).on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status: null, body: String(e.message) }));
  });
}
async function slowloris(job) {
  const slow = await Promise.all(Array.from({ length: job.slow }, () => new Promise((resolve) => {
    const socket = net.connect(PORT, HOST, () => { socket.write('GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Never: '); resolve(socket); });
    socket.on('error', () => {});
  })));
  const answers = await Promise.all(Array.from({ length: job.count }, () => get(job.path)));
  const slowOpen = slow.filter((s) => !s.destroyed && s.readyState === 'open').length;
  for (const s of slow) s.destroy();
  return { statuses: answers.map((a) => a.status), slowOpen };
}
(async () => {
  const results = [];
  for (const job of JSON.parse(process.argv[1])) {
    if (job.kind === 'raw') results.push(await raw(job.text, job.timeoutMs));
    else if (job.kind === 'get') results.push(await get(job.path));
    else if (job.kind === 'many') {
      const answers = await Promise.all(Array.from({ length: job.count }, (_, i) => get(job.paths[i % job.paths.length])));
      results.push({ statuses: answers.map((a) => a.status) });
    } else if (job.kind === 'slowloris') results.push(await slowloris(job));
  }
  process.stdout.write(JSON.stringify(results));
})();
`;

type Job =
  | { kind: 'raw'; text: string; timeoutMs?: number }
  | { kind: 'get'; path: string }
  | { kind: 'many'; count: number; paths: string[] }
  | { kind: 'slowloris'; slow: number; count: number; path: string };
interface RawAnswer {
  status: number | null;
  head: string;
  body: string;
  end: string;
}

async function api<T = RawAnswer>(world: World, jobs: Job[]): Promise<T[]> {
  const r = await world.exec(['node', '-e', CLIENT, JSON.stringify(jobs)], { timeoutMs: 60_000 });
  return JSON.parse(r.stdout) as T[];
}

const request = (method: string, path: string, headers: Record<string, string> = {}, body = ''): Job => ({
  kind: 'raw',
  text: `${method} ${path} HTTP/1.1\r\n${Object.entries({ Host: '127.0.0.1:5209', Connection: 'close', ...headers })
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n${body}`,
});

const ENDPOINTS = [
  '/api/cloud/system',
  '/api/cloud/network',
  '/api/cloud/credentials',
  '/api/cloud/dynamicinstanceidentity/document',
  '/api/cloud/dynamicinstanceidentity/pkcs7',
  '/api/cloud/dynamicinstanceidentity/signature',
  '/api/cloud/dynamicinstanceidentity/rsa2048',
  '/api/v1/status',
  '/api/v1/plan',
];

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? [join(dir, entry.name), ...filesUnder(join(dir, entry.name))] : [join(dir, entry.name)],
  );
}

/** No secret in any API answer, any state file, or the daemon's output. */
async function expectNoSecret(expect: ExpectStatic, world: World, daemon: Daemon, secrets: string[]): Promise<void> {
  const answers = await api<{ status: number; body: string }>(world, ENDPOINTS.map((path) => ({ kind: 'get', path })));
  expect(answers.map((a) => a.status).filter((s) => s === 200).length, 'the endpoints answered').toBeGreaterThanOrEqual(3);
  const files = filesUnder(world.stateDir).filter((path) => statSync(path).isFile());
  expect(files.map((path) => path.slice(world.stateDir.length + 1))).toEqual(expect.arrayContaining(['state.json', 'system']));
  const places: [string, string][] = [
    ...answers.map((a, i): [string, string] => [`GET ${ENDPOINTS[i]}`, a.body]),
    ...files.map((path): [string, string] => [path, readFileSync(path, 'utf8')]),
    ['daemon output', daemon.output()],
  ];
  const leaks = places.flatMap(([where, text]) => secrets.filter((secret) => text.includes(secret)).map((secret) => `${secret} in ${where}`));
  expect(leaks).toEqual([]);
}

// ---------------------------------------------------------------------------------------------
// Configuration at the command line

const BAD_VALUES: [key: string, toml: string, shown: string][] = [
  ['System.LogLevel', '"loud"', '"loud"'],
  ['System.LogFormat', '"xml"', '"xml"'],
  ['System.RefreshTimer', '"2s"', '"2s"'],
  ['System.RefreshTimer', '"soon"', '"soon"'],
  ['System.RefreshTimer', '300', '300'],
  ['Network.Address', '""', '""'],
  ['Network.Address', '"999.1.1.1"', '"999.1.1.1"'],
  ['Network.Port', '70000', '70000'],
  ['Network.Port', '"http"', '"http"'],
  ['Network.Listen', '"nowhere"', '"nowhere"'],
  ['Network.Supplementary', '3', '3'],
  ['Network.PolicyRouting', '"maybe"', '"maybe"'],
  ['Network.Unmanaged', '["docker*"]', '["docker*"]'],
  ['Network.Unmanaged', '"eth["', '"eth["'],
  ['Network.RouteTableBase', '254', '254'],
  ['Network.RouteTableBase', '"ten"', '"ten"'],
];

describe.concurrent('hostile configuration (CLI)', () => {
  let world: World;
  beforeAll(async () => {
    world = await createWorld({ fixture: loadFixture('ec2/three-enis'), dhcp: true, foreign: true });
  });
  afterAll(async () => {
    await world?.destroy();
  });

  for (const [key, toml, shown] of BAD_VALUES) {
    test(`--check-config with ${key} = ${toml}: exit 2, one line naming the key and the value`, async ({ expect }) => {
      const [section, name] = key.split('.');
      const path = configFile(`[${section}]\n${name} = ${toml}\n`);
      const r = await runCloudNetwork(world, ['--check-config'], { CLOUD_NETWORK_CONFIG: path });
      expect(r.exitCode, describeRun(r)).toBe(2);
      expect(said(r.stderr), describeRun(r)).toEqual([expect.stringMatching(new RegExp(`^error: config: ${escape(key)} .*got ${escape(shown)}; using the default$`))]);
      expect(r.stdout.trim(), describeRun(r)).toBe(`${path}: 1 invalid value(s)`);
    });
  }

  test('--check-config with an unknown key: exit 0, one warning naming it', async ({ expect }) => {
    const path = configFile('[Network]\nPorts = 5209\n');
    const r = await runCloudNetwork(world, ['--check-config'], { CLOUD_NETWORK_CONFIG: path });
    expect(r.exitCode, describeRun(r)).toBe(0);
    expect(said(r.stderr), describeRun(r)).toEqual(['warning: config: unknown key Network.Ports ignored']);
    expect(r.stdout, describeRun(r)).toBe(`${path}: OK`);
  });

  test('--check-config with a TOML syntax error: exit 2, one line with the line number', async ({ expect }) => {
    const path = configFile('[System]\nLogLevel = "info"\nRefreshTimer = 300s\n');
    const r = await runCloudNetwork(world, ['--check-config'], { CLOUD_NETWORK_CONFIG: path });
    expect(r.exitCode, describeRun(r)).toBe(2);
    expect(said(r.stderr), describeRun(r)).toEqual([expect.stringMatching(new RegExp(`^error: config ${escape(path)} line 3, column \\d+: .+`))]);
    expect(r.stdout).toBe('');
  });

  test('--check-config with an unreadable file (user nobody, mode 0600): exit 2, one line', async ({ expect }) => {
    const path = configFile('[System]\nLogLevel = "info"\n', 0o600);
    const r = await runIn(world, NOBODY, ['--check-config'], { CLOUD_NETWORK_CONFIG: path });
    expect(r.exitCode, describeRun(r)).toBe(2);
    expect(said(r.stderr), describeRun(r)).toEqual([`error: cannot read config ${path}: permission denied`]);
  });

  test('a state directory it cannot use (user nobody, under a directory of root): exit 1, one line, nothing changed', async ({ expect }) => {
    const stateDir = join(tempDir(), 'state');
    const config = configFile('');
    const before = await world.snapshot();
    const r = await runIn(world, NOBODY, ['--once'], { CLOUD_NETWORK_STATE_DIR: stateDir, CLOUD_NETWORK_CONFIG: config });
    expect(r.exitCode, describeRun(r)).toBe(1);
    expect(said(r.stderr), describeRun(r)).toEqual([
      `error: cannot prepare the state directory ${stateDir}: it belongs to another user or is not writable; run as root, or set CLOUD_NETWORK_STATE_DIR to a directory of your own`,
    ]);
    expect(await world.snapshot()).toEqual(before);
  });

  test('--check-config with a directory as the config file: exit 2, one line', async ({ expect }) => {
    const dir = tempDir();
    const r = await runCloudNetwork(world, ['--check-config'], { CLOUD_NETWORK_CONFIG: dir });
    expect(r.exitCode, describeRun(r)).toBe(2);
    expect(said(r.stderr), describeRun(r)).toEqual([`error: cannot read config ${dir}: it is a directory`]);
  });

  test('--check-config with a missing explicit file: exit 2, one line', async ({ expect }) => {
    const path = join(tempDir(), 'absent.toml');
    const r = await runCloudNetwork(world, ['--check-config', '--config', path]);
    expect(r.exitCode, describeRun(r)).toBe(2);
    expect(said(r.stderr), describeRun(r)).toEqual([`error: cannot read config ${path}: no such file`]);
  });
});

describe.concurrent('hostile configuration (--once and daemon)', () => {
  test('--once with a TOML syntax error: exit 2, one line, changes nothing, asks IMDS nothing', async ({ expect }) => {
    const world = await createWorld({ fixture: loadFixture('ec2/three-enis'), dhcp: true, foreign: true, config: '[Network]\nPolicyRouting = "yes\n' });
    try {
      const before = await world.snapshot();
      const mon = await world.monitor();
      const r = await runCloudNetwork(world, ['--once']);
      expect(await mon.stop()).toEqual([]);
      expect(r.exitCode, describeRun(r)).toBe(2);
      expect(said(r.stderr), describeRun(r)).toEqual([expect.stringMatching(/^error: config \S+ line 2, column \d+: .+/)]);
      expect(await world.snapshot()).toEqual(before);
      expect(await world.mock.log()).toEqual([]);
      expect(readdirSync(world.stateDir), 'state dir untouched').toEqual([]);
      // Fixed file: the next run converges.
      world.writeConfig('[Network]\nPolicyRouting = "yes"\n');
      const fixed = await runCloudNetwork(world, ['--once']);
      expect(fixed.exitCode, describeRun(fixed)).toBe(0);
      expect(await checkConfigured(world)).toEqual([]);
    } finally {
      await world.destroy();
    }
  });

  test('--once with a bad value: one line naming it, the default is used, the run converges', async ({ expect }) => {
    const world = await createWorld({ fixture: loadFixture('ec2/three-enis'), dhcp: true, foreign: true, config: '[Network]\nRouteTableBase = 254\n' });
    try {
      const r = await runCloudNetwork(world, ['--once']);
      expect(r.exitCode, describeRun(r)).toBe(0);
      expect(errorLines(r.stderr), describeRun(r)).toEqual(['error: config: Network.RouteTableBase must be an integer from 256 to 20000, got 254; using the default']);
      expect(await checkConfigured(world, { base: 10000 })).toEqual([]);
    } finally {
      await world.destroy();
    }
  });

  test('daemon with bad values keeps running on the defaults; SIGHUP with a syntax error or a bad value keeps the running configuration', { timeout: 60_000 }, async ({ expect }) => {
    const { world, daemon } = await daemonWorld(loadFixture('ec2/three-enis'), {}, '[Network]\nPort = 70000\nRouteTableBase = "x"\n');
    try {
      expect(errorLines(daemon.output()).sort()).toEqual([
        'error: config: Network.Port must be a port number 1-65535, got 70000; using the default',
        'error: config: Network.RouteTableBase must be an integer from 256 to 20000, got "x"; using the default',
      ]);
      const seq = await lastSeq(world);
      const mark = daemon.output().length;
      world.writeConfig('[Network]\nPort = 6000\n[System\n');
      daemon.child.kill('SIGHUP');
      await daemon.waitForOutput(/error: SIGHUP: config \S+ line 3, column \d+: [^\n]+; keeping the current configuration/);
      const [status] = await api<{ status: number }>(world, [{ kind: 'get', path: '/api/v1/status' }]);
      expect(status!.status, 'still serving on the port it had').toBe(200);
      expect(errorLines(daemon.output().slice(mark))).toHaveLength(1);
      expect(await world.mock.log(seq), 'a refused reload asks IMDS nothing').toEqual([]);
      // A bad value on reload would fall back to a default: excluding nothing, here. Not applied.
      world.writeConfig('[Network]\nUnmanaged = "eth["\n');
      const refusedAt = daemon.output().length;
      daemon.child.kill('SIGHUP');
      await daemon.waitForOutput(/error: SIGHUP: the config file has invalid values \(Network\.Unmanaged [^\n]+\); keeping the current configuration/);
      expect(said(daemon.output().slice(refusedAt)), 'one line, and no "using the default"').toHaveLength(1);
      expect(await world.mock.log(seq), 'a refused reload asks IMDS nothing').toEqual([]);
      world.writeConfig('');
      daemon.child.kill('SIGHUP');
      await daemon.waitForOutput(/info: SIGHUP: configuration reloaded/);
      expect(await daemon.stop()).toBe(0);
      expect(await checkConfigured(world)).toEqual([]);
    } finally {
      await world.destroy();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The API, secrets, state files, and two instances at once (EC2 daemon)

const EC2_SECRET_KEY = 'hostileSecretAccessKey/7f3a9c0e5b2d41';
const EC2_SESSION_TOKEN = 'hostileSessionToken+51d2e8aa90c4f6';

function ec2WithSecrets(): Fixture {
  const f = cloneFixture(loadFixture('ec2/three-enis'));
  const path = '/latest/meta-data/iam/security-credentials/example-role';
  f.paths[path] = JSON.stringify({ ...(JSON.parse(f.paths[path]!) as object), SecretAccessKey: EC2_SECRET_KEY, Token: EC2_SESSION_TOKEN });
  return f;
}

describe.concurrent('hostile API clients (daemon)', () => {
  let world: World;
  let daemon: Daemon;
  beforeAll(async () => {
    ({ world, daemon } = await daemonWorld(ec2WithSecrets()));
  }, 60_000);
  afterAll(async () => {
    await world?.destroy();
  });

  test('API non-GET methods: 405 with Allow; HEAD answers; a GET with a body is refused', async ({ expect }) => {
    const answers = await api(world, [
      ...['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'].map((method) => request(method, '/api/v1/status', { 'Content-Length': '0' })),
      request('HEAD', '/api/v1/status'),
      request('GET', '/api/v1/status', { 'Content-Length': '2', 'Content-Type': 'application/json' }, '{}'),
    ]);
    for (const a of answers.slice(0, 5)) {
      expect(a.status, a.head).toBe(405);
      expect(a.head).toMatch(/\r\nAllow: GET, HEAD\r\n/i);
      expect(JSON.parse(a.body)).toMatchObject({ status: 405, error: expect.stringMatching(/not allowed/) });
    }
    expect(answers[5]!.status).toBe(200);
    expect(answers[5]!.body).toBe('');
    expect(answers[6]!.status).toBe(400);
  });

  test('API 10 KB path: a JSON 404, and the daemon carries on', async ({ expect }) => {
    const long = `/api/v1/${'a'.repeat(10 * 1024)}`;
    const [notFound, traversal, status] = await api(world, [
      request('GET', long),
      request('GET', '/api/cloud/dynamicinstanceidentity/..%2f..%2f..%2fetc%2fpasswd'),
      request('GET', '/api/v1/status'),
    ]);
    expect(notFound!.status, notFound!.head).toBe(404);
    expect(JSON.parse(notFound!.body)).toMatchObject({ status: 404 });
    expect(traversal!.status, traversal!.head).toBe(404);
    expect(traversal!.body).not.toMatch(/root:/);
    expect(status!.status).toBe(200);
  });

  test('API 200 concurrent clients: all served', { timeout: 60_000 }, async ({ expect }) => {
    const [result] = await api<{ statuses: (number | null)[] }>(world, [{ kind: 'many', count: 200, paths: ['/api/v1/status', '/api/cloud/network', '/api/cloud/system', '/api/v1/plan'] }]);
    expect(result!.statuses.filter((s) => s !== 200)).toEqual([]);
    expect(result!.statuses).toHaveLength(200);
  });

  test('API clients that never finish their headers: the others are still served', async ({ expect }) => {
    const [result] = await api<{ statuses: (number | null)[]; slowOpen: number }>(world, [{ kind: 'slowloris', slow: 100, count: 20, path: '/api/v1/status' }]);
    expect(result!.statuses).toEqual(Array(20).fill(200));
    expect(result!.slowOpen, 'the slow clients were still connected while the others were served').toBe(100);
  });

  test('API bad Host: 403', async ({ expect }) => {
    const hosts = ['evil.example', 'evil.example:5209', '127.0.0.1.nip.io:5209', 'localhost.evil.example', '[fe80::1]:5209', '0.0.0.0:5209'];
    const answers = await api(world, [
      ...hosts.map((host) => request('GET', '/api/v1/status', { Host: host })),
      { kind: 'raw', text: 'GET /api/v1/status HTTP/1.0\r\n\r\n' },
      request('GET', '/api/v1/status', { Host: 'localhost:5209' }),
    ]);
    for (const [i, a] of answers.slice(0, hosts.length).entries()) {
      expect(a.status, `Host: ${hosts[i]}`).toBe(403);
      expect(JSON.parse(a.body)).toEqual({ status: 403, error: 'Host header must name a loopback address' });
    }
    expect(answers[hosts.length]!.status, 'no Host at all').toBe(403);
    expect(answers[hosts.length + 1]!.status, 'Host: localhost').toBe(200);
  });

  test('no secret (EC2 SecretAccessKey, Token, IMDS session token) in any API answer, state file or log line', async ({ expect }) => {
    const [credentials] = await api<{ status: number; body: string }>(world, [{ kind: 'get', path: '/api/cloud/credentials' }]);
    expect(credentials!.status).toBe(200);
    expect(JSON.parse(credentials!.body)).toMatchObject({ AccessKeyId: 'ASIAIOSFODNN7EXAMPLE', SecretAccessKey: 'REDACTED', Token: 'REDACTED' });
    const sessionTokens = [...new Set((await world.mock.log()).flatMap((e) => e.headers['x-aws-ec2-metadata-token'] ?? []))];
    expect(sessionTokens.length).toBeGreaterThan(0);
    await expectNoSecret(expect, world, daemon, [EC2_SECRET_KEY, EC2_SESSION_TOKEN, ...sessionTokens]);
  });

  test('state files 0640 or stricter, directories 0750 or stricter, nothing world-writable', async ({ expect }) => {
    const paths = [world.stateDir, ...filesUnder(world.stateDir)];
    expect(paths.map((p) => p.slice(world.stateDir.length))).toEqual(expect.arrayContaining(['', '/state.json', '/system', '/lock', '/links', '/provider/ec2/document']));
    const loose = paths.flatMap((path) => {
      const st = statSync(path);
      const allowed = st.isDirectory() ? 0o750 : 0o640;
      const mode = st.mode & 0o7777;
      return (mode & ~allowed) !== 0 ? [`${path} ${mode.toString(8)}`] : [];
    });
    expect(loose).toEqual([]);
  });

  test('daemon and --once at the same time: the second refuses in one line, changes nothing, asks IMDS nothing', async ({ expect }) => {
    const seq = await lastSeq(world);
    const before = await stableSnapshot(world);
    const mon = await world.monitor();
    const r = await runCloudNetwork(world, ['--once']);
    const writes = await mon.stop();
    expect(r.exitCode, describeRun(r)).toBe(1);
    const pid = daemon.child.pid!;
    const refusal = new RegExp(`^error: another cloud-network \\(pid ${pid}\\) is already running with state directory ${escape(world.stateDir)}; not starting a second one$`);
    expect(said(r.stderr), describeRun(r)).toEqual([expect.stringMatching(refusal)]);
    expect(writes).toEqual([]);
    expect(snapshotDelta(before, await stableSnapshot(world))).toEqual({ added: [], removed: [] });
    expect(await world.mock.log(seq)).toEqual([]);
  });

  test('daemon whose API address is already taken: exit 1, one line, changes nothing', async ({ expect }) => {
    // Another process holds 127.0.0.1:5209 in this world's namespace: the first daemon. A second
    // one with its own state directory passes the lock and must fail on the port, in one line.
    const stateDir = tempDir();
    const before = await stableSnapshot(world);
    const mon = await world.monitor();
    const second = startCloudNetwork(world, [], { CLOUD_NETWORK_STATE_DIR: stateDir });
    const exit = await closed(second);
    const writes = await mon.stop();
    expect(exit, second.output()).toBe(1);
    expect(said(second.output()), second.output()).toEqual([expect.stringMatching(/^error: cannot listen on 127\.0\.0\.1:5209: EADDRINUSE/)]);
    expect(writes).toEqual([]);
    expect(snapshotDelta(before, await stableSnapshot(world))).toEqual({ added: [], removed: [] });
  });

  test('a second daemon beside the first: refuses in one line with exit 1, the first keeps serving', async ({ expect }) => {
    const second = startCloudNetwork(world);
    const exit = await closed(second);
    expect(exit, second.output()).toBe(1);
    expect(said(second.output())).toEqual([expect.stringMatching(/^error: another cloud-network \(pid \d+\) is already running/)]);
    const [status] = await api<{ status: number }>(world, [{ kind: 'get', path: '/api/v1/status' }]);
    expect(status!.status).toBe(200);
    expect(daemon.child.exitCode).toBeNull();
  });
});

describe.concurrent('no secret in answers or files (Azure, GCP)', () => {
  test('no secret (Azure userData, customData) in any API answer, state file or log line', async ({ expect }) => {
    const userData = Buffer.from('hostile user data 9b1c').toString('base64');
    const customData = Buffer.from('hostile custom data 4e7d').toString('base64');
    const fixture = editJson(cloneFixture(loadFixture('azure/three-nics')), PATHS.azureInstance, (doc: { compute: Record<string, unknown> }) => {
      doc.compute.userData = userData;
      doc.compute.customData = customData;
    });
    const { world, daemon } = await daemonWorld(fixture);
    try {
      await expectNoSecret(expect, world, daemon, [userData, customData]);
    } finally {
      await world.destroy();
    }
  });

  test('no secret (GCP startup-script and other attributes) in any API answer, state file or log line', async ({ expect }) => {
    const secret = 'hostile-startup-secret-0c93';
    const fixture = editJson(cloneFixture(loadFixture('gcp/two-nics-aliases')), PATHS.gcpRoot, (doc: { instance: { attributes: Record<string, string> }; project: { attributes?: Record<string, string> } }) => {
      doc.instance.attributes['startup-script'] = `#!/bin/sh\necho ${secret}\n`;
      doc.project.attributes = { ...doc.project.attributes, 'db-password': secret };
    });
    const { world, daemon } = await daemonWorld(fixture);
    try {
      await expectNoSecret(expect, world, daemon, [secret]);
    } finally {
      await world.destroy();
    }
  });
});
