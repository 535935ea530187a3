// Issue 3 end to end: the daemon in a namespace world keeps the kernel right over time:
// metadata changes, kernel events, hot-plug, outages, signals, a second instance, privileges.
// Deadlines are the (restore within 2 s, hot-plug within 5 s, GCP within 1 s).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { checkConfigured, checkForeign } from '../support/assertions.js';
import { expectedState } from '../support/expected.js';
import { editJson, loadFixture, nicsOf, PATHS, withoutAddress, type Fixture } from '../support/fixture.js';
import { owned } from '../support/kernel.js';
import { createWorld, describeRun, runCloudNetwork, startCloudNetwork, type Daemon, type World } from '../support/world.js';

const worlds: World[] = [];
afterEach(async () => {
  for (const world of worlds.splice(0)) await world.destroy();
});

async function world(fixture: string | Fixture, config = '[System]\nRefreshTimer = "5s"\n'): Promise<World> {
  const created = await createWorld({ fixture: typeof fixture === 'string' ? loadFixture(fixture) : fixture, dhcp: true, foreign: true, config });
  worlds.push(created);
  return created;
}

/** Problems between the kernel and what `fixture` asks for (addresses present, exactly its proto 149 rules/routes). */
async function differences(w: World, fixture: Fixture): Promise<string[]> {
  const nics = nicsOf(fixture).map((nic) => ({ ...nic, name: `eth${nic.index}`, peer: `c${nic.index}` }));
  const want = expectedState(nics);
  const snap = await w.snapshot();
  const mine = owned(snap);
  return [
    ...want.addresses.filter((a) => !snap.addresses.includes(a)).map((a) => `missing address ${a}`),
    ...want.rules.filter((r) => !mine.rules.includes(r)).map((r) => `missing rule ${r}`),
    ...mine.rules.filter((r) => !want.rules.includes(r)).map((r) => `extra rule ${r}`),
    ...want.routes.filter((r) => !mine.routes.includes(r)).map((r) => `missing route ${r}`),
    ...mine.routes.filter((r) => !want.routes.includes(r)).map((r) => `extra route ${r}`),
    ...checkForeign(w, snap),
  ];
}

async function converge(w: World, fixture: Fixture, timeout: number): Promise<void> {
  await expect.poll(() => differences(w, fixture), { timeout, interval: 50 }).toEqual([]);
}

async function startedDaemon(w: World): Promise<Daemon> {
  const daemon = startCloudNetwork(w);
  await converge(w, await w.mock.fixture(), 15_000);
  return daemon;
}

/** GET (or another method) against the daemon's API from inside the namespace. */
async function api(w: World, path: string, o: { method?: string; host?: string } = {}): Promise<{ status: number; body: unknown }> {
  const script = `
    const req = require('http').request({ host: '127.0.0.1', port: 5209, path: ${JSON.stringify(path)}, method: ${JSON.stringify(o.method ?? 'GET')},
      headers: { Host: ${JSON.stringify(o.host ?? '127.0.0.1:5209')} } }, (res) => {
      let body = ''; res.on('data', (d) => (body += d)); res.on('end', () => console.log(JSON.stringify({ status: res.statusCode, body })));
    });
    req.on('error', (e) => { console.log(JSON.stringify({ status: 0, body: e.message })); });
    req.end();`;
  const r = await w.exec(['node', '-e', script]);
  const { status, body } = JSON.parse(r.stdout) as { status: number; body: string };
  return { status, body: status === 0 ? body : (JSON.parse(body) as unknown) };
}

describe('daemon', () => {
  test('follows a metadata change within one refresh', async () => {
    const w = await world('ec2/three-enis');
    await startedDaemon(w);
    const eth1 = w.nic(1);
    const changed = withoutAddress(await w.mock.fixture(), eth1.mac, eth1.addresses[1]!);
    const listing = `${PATHS.ec2Macs}${eth1.mac}/local-ipv4s`;
    changed.paths[listing] = `${changed.paths[listing]}\n172.31.40.77`;
    await w.mock.setFixture(changed);
    await converge(w, changed, 7_000); // RefreshTimer 5 s + one reconcile
  });

  test('restores a deleted rule and address of its own within 2 s without asking the metadata service', async () => {
    const w = await world('ec2/three-enis');
    await startedDaemon(w);
    await w.mock.resetLog();
    const eth1 = w.nic(1);
    await w.ip(['rule', 'del', 'priority', '20001', 'from', eth1.addresses[1]!, 'lookup', '10001']);
    await w.ip(['address', 'del', `${eth1.addresses[2]}/32`, 'dev', eth1.name]);
    await converge(w, await w.mock.fixture(), 2_000);
    expect(await w.mock.log()).toEqual([]);
  });

  test('configures a hot-plugged interface within 5 s and cleans up after it is removed', async () => {
    const base = loadFixture('azure/three-nics');
    const w = await world(editJson(structuredClone(base), PATHS.azureInstance, (doc: { network: { interface: unknown[] } }) => {
      doc.network.interface.pop();
    }));
    await startedDaemon(w);
    const third = nicsOf(base)[2]!;
    const name = await w.hotplug({ mac: third.mac, gateway: third.gateway, addresses: third.addresses, subnet: third.subnet });
    await w.mock.setFixture(base);
    await converge(w, base, 5_000);
    expect(name).toBe('eth2');
    const before = await w.snapshot();
    await w.unplug(name);
    await expect
      .poll(async () => (await w.snapshot()).rules.filter((rule) => / lookup 10002 /.test(rule)), { timeout: 5_000, interval: 50 })
      .toEqual([]);
    const after = await w.snapshot();
    // Nothing of the other interfaces was touched.
    const others = (lines: string[]) => lines.filter((line) => !line.includes('eth2') && !/ 10002|10\.0\.2\./.test(line));
    expect(others(after.addresses)).toEqual(others(before.addresses));
    expect(others(after.rules)).toEqual(others(before.rules));
  });

  test('a new link that is not in the metadata costs network reads only', async () => {
    const w = await world('ec2/three-enis', '[System]\nRefreshTimer = "1h"\n');
    const daemon = await startedDaemon(w);
    await w.mock.resetLog();
    await w.ip(['link', 'add', 'br-test', 'type', 'bridge']);
    await w.mock.waitForRequest((entry) => entry.path === PATHS.ec2Macs, 5_000);
    await expect.poll(() => daemon.output()).toMatch(/new interface br-test .*: reading the metadata/);
    const paths = (await w.mock.log()).map((entry) => entry.path);
    expect(paths.filter((path) => path.endsWith('/instance-id') || path.includes('/dynamic/'))).toEqual([]);
  });

  test('a new link with an Unmanaged name is no reason to read the metadata', async () => {
    const w = await world('ec2/three-enis', '[System]\nRefreshTimer = "1h"\n[Network]\nUnmanaged = "docker*"\n');
    const daemon = await startedDaemon(w);
    await w.ip(['link', 'add', 'docker0', 'type', 'bridge']);
    // Kernel events arrive in order: once the second link's read is seen, the first was handled.
    await w.ip(['link', 'add', 'br-test', 'type', 'bridge']);
    await expect.poll(() => daemon.output(), { timeout: 5_000 }).toMatch(/new interface br-test .*: reading the metadata/);
    expect(daemon.output()).not.toMatch(/new interface docker0/);
  });

  test('restarts an ip monitor that dies and still repairs drift; a stop reaching the monitor first is no alarm', async () => {
    const w = await world('ec2/three-enis', '[System]\nRefreshTimer = "1h"\n');
    const daemon = await startedDaemon(w);
    const monitorPid = () => {
      // The daemon runs as root here (no cloud-network user): its children include the monitor.
      const children = readFileSync(`/proc/${daemon.child.pid}/task/${daemon.child.pid}/children`, 'utf8').trim().split(/\s+/);
      return children.find((pid) => pid !== '' && readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('monitor'));
    };
    const first = monitorPid();
    expect(first, 'an ip monitor child').toBeDefined();
    process.kill(Number(first), 'SIGKILL');
    await daemon.waitForOutput(/warning: ip monitor exited \(SIGKILL\); restarted after \d+ ms/, 5_000);
    await expect.poll(monitorPid, { timeout: 5_000 }).not.toBe(first);
    await w.mock.resetLog();
    await w.ip(['rule', 'del', 'priority', '20001', 'from', w.nic(1).addresses[1]!, 'lookup', '10001']);
    await converge(w, await w.mock.fixture(), 2_000);
    expect(await w.mock.log()).toEqual([]);
    // systemctl stop signals the whole group: the monitor may die before the daemon hears it.
    const mark = daemon.output().length;
    process.kill(Number(monitorPid()), 'SIGTERM');
    expect(await daemon.stop('SIGTERM')).toBe(0);
    expect(daemon.output().slice(mark)).not.toMatch(/ip monitor exited/);
  });

  test('brings a managed link that was set down back up without asking the metadata service', async () => {
    const w = await world('azure/three-nics', '[System]\nRefreshTimer = "1h"\n');
    await startedDaemon(w);
    await w.mock.resetLog();
    await w.ip(['link', 'set', 'eth1', 'down']);
    await expect.poll(() => checkConfigured(w), { timeout: 2_000, interval: 50 }).toEqual([]);
    expect(await w.mock.log()).toEqual([]);
  });

  test('GCP: applies a metadata change within 1 s through wait_for_change', async () => {
    const w = await world('gcp/two-nics-aliases', '[System]\nRefreshTimer = "1h"\n');
    await startedDaemon(w);
    await expect.poll(() => w.mock.state().then((s) => s.waiting), { timeout: 5_000 }).toBe(1);
    const changed = editJson(await w.mock.fixture(), PATHS.gcpRoot, (doc: { instance: { networkInterfaces: { forwardedIps: string[] }[] } }) => {
      doc.instance.networkInterfaces[1]!.forwardedIps = ['34.120.10.9'];
    });
    await w.mock.setFixture(changed);
    await converge(w, changed, 1_000);
  });

  test('keeps everything through 20 s of HTTP 500, then recovers', async () => {
    const w = await world('azure/three-nics');
    await startedDaemon(w);
    const before = await w.snapshot();
    const fault = await w.mock.addFault({ kind: 'status', status: 500 });
    const changed = withoutAddress(await w.mock.fixture(), w.nic(0).mac, w.nic(0).addresses[1]!);
    await w.mock.waitForRequest((entry) => entry.status === 500, 10_000);
    const failing = Date.now();
    while (Date.now() - failing < 20_000) {
      expect(await w.snapshot()).toEqual(before);
      await w.mock.waitForRequest((entry) => entry.status === 500 && entry.time > Date.now() - 1_000, 15_000);
    }
    const during = (await api(w, '/api/v1/status')).body as { lastError: string | null };
    expect(during.lastError).toMatch(/HTTP 500/);
    await w.mock.setFixture(changed);
    await w.mock.removeFault(fault);
    await converge(w, changed, 30_000);
    await expect.poll(async () => ((await api(w, '/api/v1/status')).body as { lastError: string | null }).lastError).toBeNull();
  }, 90_000);

  test('stops on SIGTERM within 2 s with exit 0 and the configuration in place; a second instance refuses meanwhile', async () => {
    const w = await world('ec2/three-enis');
    const daemon = await startedDaemon(w);
    const second = await runCloudNetwork(w, ['--once']);
    expect(second.exitCode, describeRun(second)).toBe(1);
    expect(second.stderr.trim().split('\n').filter((line) => line.startsWith('error'))).toEqual([
      expect.stringMatching(/another cloud-network \(pid \d+\) is already running/),
    ]);
    const configured = await w.snapshot();
    const stopped = Date.now();
    expect(await daemon.stop('SIGTERM')).toBe(0);
    expect(Date.now() - stopped).toBeLessThan(2_000);
    expect(await w.snapshot()).toEqual(configured);
  });

  test('SIGHUP re-reads the config and reconciles', async () => {
    const w = await world('ec2/three-enis', '[System]\nRefreshTimer = "1h"\n');
    const daemon = await startedDaemon(w);
    w.writeConfig('[System]\nRefreshTimer = "1h"\n[Network]\nPolicyRouting = "no"\n');
    daemon.child.kill('SIGHUP');
    await expect.poll(async () => owned(await w.snapshot()), { timeout: 5_000, interval: 50 }).toEqual({ rules: [], routes: [] }).catch((e: Error) => { throw new Error(`${e.message}\n${daemon.output()}`); });
  });
});

describe('API', () => {
  test.each(['ec2/three-enis', 'azure/three-nics', 'gcp/two-nics-aliases'])('%s: serves the provider documents read-only', async (name) => {
    const w = await world(name);
    await startedDaemon(w);
    const system = await api(w, '/api/cloud/system');
    expect(system.status).toBe(200);
    const network = await api(w, '/api/cloud/network');
    expect(network.status).toBe(200);
    const status = await api(w, '/api/v1/status');
    expect(status).toMatchObject({ status: 200, body: { provider: w.provider, interfaces: expect.any(Array) } });
    expect((status.body as { interfaces: unknown[] }).interfaces).toHaveLength(w.nics.length);
    expect(await api(w, '/api/v1/plan')).toMatchObject({ status: 200, body: { script: '' } });
    if (w.provider === 'ec2') {
      expect(system.body).toMatchObject({ 'instance-id': 'i-1234567890abcdef0' });
      expect(Object.keys(network.body as object)).toHaveLength(3);
      expect(await api(w, '/api/cloud/credentials')).toMatchObject({ status: 200, body: { SecretAccessKey: 'REDACTED', Token: 'REDACTED' } });
      expect(await api(w, '/api/cloud/dynamicinstanceidentity/document')).toMatchObject({ status: 200, body: { instanceId: 'i-1234567890abcdef0' } });
      expect((await api(w, '/api/cloud/dynamicinstanceidentity/signature')).status).toBe(200);
    } else {
      expect(system.body).toMatchObject(w.provider === 'azure' ? { vmId: '02aab8a4-74ef-476e-8182-f6d2ba4166a6' } : { name: 'instance-2' });
      expect((await api(w, '/api/cloud/credentials')).status).toBe(404);
    }
    expect((await api(w, '/api/cloud/system', { host: 'evil.example:5209' })).status).toBe(403);
    expect((await api(w, '/api/cloud/system', { method: 'POST' })).status).toBe(405);
    expect((await api(w, '/api/nothing')).status).toBe(404);
  });
});

describe('systemd', () => {
  // A stand-in for systemd's notification socket: prints each datagram on a line and closes
  // the file descriptors of BARRIER=1, which is how systemd answers systemd-notify's barrier.
  const LISTENER = `
import array, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o777)
print("LISTENING", flush=True)
while True:
    msg, ancdata, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(64))
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
            for fd in fds:
                os.close(fd)
    print(msg.decode().replace("\\n", " "), flush=True)
`;

  test('notifies READY=1 after the first reconcile, WATCHDOG=1 while healthy, STOPPING=1 on exit', async () => {
    const w = await world('ec2/three-enis');
    const socketPath = join(w.dir, 'notify.sock');
    const listener = spawn('python3', ['-c', LISTENER, socketPath], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      let heard = '';
      listener.stdout.on('data', (chunk: Buffer) => (heard += chunk.toString()));
      await expect.poll(() => heard).toContain('LISTENING');
      const daemon = startCloudNetwork(w, [], { NOTIFY_SOCKET: socketPath, WATCHDOG_USEC: '400000' });
      await expect.poll(() => heard, { timeout: 15_000 }).toMatch(/READY=1 STATUS=configured/);
      expect(await differences(w, await w.mock.fixture())).toEqual([]);
      await expect.poll(() => heard, { timeout: 5_000 }).toMatch(/WATCHDOG=1/);
      expect(await daemon.stop('SIGTERM')).toBe(0);
      await expect.poll(() => heard, { timeout: 5_000 }).toMatch(/STOPPING=1/);
    } finally {
      listener.kill();
    }
  });
});
