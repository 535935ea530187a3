// The namespace world must look like the VM the fixture describes, clean up after itself, and
// its expectations (expected.ts) must be reachable with SPEC's own ip commands: otherwise an
// end-to-end failure could be the world's fault rather than the program's.
import { execFileSync } from 'node:child_process';
import { describe, expect, test } from 'vitest';
import { checkConfigured, snapshotDelta } from './assertions.js';
import { expectedState, referenceBatch } from './expected.js';
import { loadFixture, PATHS, type Provider } from './fixture.js';
import { ipBatch, ipJson, unsettledLinks } from './kernel.js';
import { createWorld, REMOTE, requireRoot, sweepStaleNamespaces, type World } from './world.js';

const FIXTURES: Record<Provider, string> = { ec2: 'ec2/three-enis', azure: 'azure/three-nics', gcp: 'gcp/two-nics-aliases' };

function namespaces(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((l) => l !== '');
}

async function withWorld<T>(w: World, body: (w: World) => Promise<T>): Promise<T> {
  try {
    return await body(w);
  } finally {
    await w.destroy();
  }
}

describe.concurrent('world', () => {
  test('runs as root (the e2e tests fail, never skip, otherwise)', () => {
    expect(requireRoot).not.toThrow();
  });

  test('ec2: links in NIC-key order with the metadata MACs, DHCP, foreign state, VF, mock inside', async ({ expect }) => {
    const fixture = loadFixture(FIXTURES.ec2);
    const w = await createWorld({ fixture, dhcp: true, foreign: true, vf: [0] });
    await withWorld(w, async () => {
      const links = await w.ipJson<{ ifname: string; address: string; master?: string; flags: string[] }[]>(['link', 'show']);
      const byName = new Map(links.map((l) => [l.ifname, l]));
      // NIC-key order, checked against the fixture directly (the MAC listing is not in device order).
      w.nics.forEach((nic, i) => {
        expect(byName.get(`eth${i}`)?.address).toBe(nic.mac);
        expect(fixture.paths[`${PATHS.ec2Macs}${nic.mac}/device-number`]).toBe(String(i));
      });
      expect(w.nics.map((n) => n.addresses[0])).toEqual(['172.31.44.13', '172.31.47.221', '172.31.50.10']);
      // VF: same MAC, has a master; its bridge does not carry the MAC.
      expect(byName.get('vf0')).toMatchObject({ address: w.nics[0]!.mac, master: 'vfbr0' });
      expect(byName.get('vfbr0')?.address).not.toBe(w.nics[0]!.mac);
      expect(byName.get('eth1')?.flags).not.toContain('UP');

      const snap = await w.snapshot();
      expect(snap.addresses).toEqual(['eth0 172.31.44.13/20', w.foreign!.address].sort());
      expect(snap.routes).toContain('table main default via 172.31.32.1 dev eth0 src 172.31.44.13 metric 1024 proto dhcp');
      expect(snap.rules).toContain(w.foreign!.rule);
      for (const r of w.foreign!.routes) expect(snap.routes).toContain(r);
      expect(await w.routeGet(REMOTE, '172.31.44.13')).toMatchObject({ dev: 'eth0', gateway: '172.31.32.1' });

      // Real packets: connection refused (curl 7), not a timeout (28), proves ARP for the
      // gateway and the route back from the cloud namespace.
      const curl = await w.exec(['curl', '-s', '--max-time', '3', `http://${REMOTE}:1/`], { check: false });
      expect(curl.exitCode).toBe(7);

      // The mock answers inside the namespace, and its control socket works from here.
      const token = await w.exec(['curl', '-sf', '-X', 'PUT', '-H', 'X-aws-ec2-metadata-token-ttl-seconds: 60', `${w.endpoint}/latest/api/token`]);
      const mac = await w.exec(['curl', '-sf', '-H', `X-aws-ec2-metadata-token: ${token.stdout}`, `${w.endpoint}/latest/meta-data/mac`]);
      expect(mac.stdout).toBe(w.nics[0]!.mac);
      expect((await w.mock.log()).map((e) => e.status)).toEqual([200, 200]);
    });
  });

  test('azure: MACs normalized, links down without dhcp; destroy removes everything, twice', async ({ expect }) => {
    const w = await createWorld({ fixture: loadFixture(FIXTURES.azure) });
    const pid = w.mock.pid!;
    expect(namespaces()).toEqual(expect.arrayContaining([w.name, w.cloud]));
    const links = await w.ipJson<{ ifname: string; address: string; flags: string[] }[]>(['link', 'show']);
    expect(links.filter((l) => l.ifname.startsWith('eth')).map((l) => [l.ifname, l.address, l.flags.includes('UP')])).toEqual([
      ['eth0', '00:0d:3a:e7:99:b7', false],
      ['eth1', '00:0d:3a:e7:9b:59', false],
      ['eth2', '00:0d:3a:e7:a1:c2', false],
    ]);
    expect(w.nics.map((n) => [n.subnet, n.gateway])).toEqual([
      ['10.0.1.0/24', '10.0.1.1'],
      ['10.0.1.0/24', '10.0.1.1'],
      ['10.0.2.0/24', '10.0.2.1'],
    ]);
    await w.destroy();
    await w.destroy();
    expect(namespaces()).not.toContain(w.name);
    expect(namespaces()).not.toContain(w.cloud);
    expect(() => process.kill(pid, 0)).toThrow();
  });

  test('gcp: gateway from metadata, /32 primary, hotplug and unplug', async ({ expect }) => {
    const w = await createWorld({ fixture: loadFixture(FIXTURES.gcp), dhcp: true });
    await withWorld(w, async () => {
      expect(w.nics.map((n) => [n.name, n.addresses, n.gateway, n.subnet, n.mtu, n.localRoutes])).toEqual([
        ['eth0', ['10.0.0.2'], '10.0.0.1', '10.0.0.0/24', 1460, ['10.0.0.128/28', '10.0.0.200/32', '34.120.10.5']],
        ['eth1', ['10.0.1.2'], '10.0.1.1', '10.0.1.0/24', 1460, ['10.0.1.64/26']],
      ]);
      expect((await w.snapshot()).addresses).toEqual(['eth0 10.0.0.2/32']);
      expect(await w.routeGet(REMOTE, '10.0.0.2')).toMatchObject({ dev: 'eth0', gateway: '10.0.0.1' });
      // The gateway lives on the peer link in the cloud namespace, not in the VM one.
      const peer = await ipJson<{ addr_info: { local: string }[] }[]>(w.cloud, ['address', 'show', 'dev', 'c1']);
      expect(peer[0]?.addr_info.map((a) => a.local)).toEqual(['10.0.1.1']);
      expect((await w.exec(['ip', 'link', 'show', 'dev', 'c1'], { check: false })).exitCode).not.toBe(0);
      const name = await w.hotplug({ mac: '42:01:0a:00:02:02', gateway: '10.0.2.1' });
      expect(name).toBe('eth2');
      const mon = await w.monitor();
      await w.unplug('eth2');
      await mon.waitFor(/^Deleted \d+: eth2/);
      await mon.stop();
      expect((await w.snapshot()).links.some((l) => l.startsWith('eth2 '))).toBe(false);
    });
  });

  test('monitor reports writes in its window and nothing when nothing changes', async ({ expect }) => {
    const w = await createWorld({ fixture: loadFixture(FIXTURES.azure), mock: false, linksUp: true });
    await withWorld(w, async () => {
      // A carrier change reaches operstate and IPv6 up to a second later (linkwatch runs at most
      // once a second, so the second flap surely waits): the monitor must wait that out rather
      // than report it as a write in its window.
      for (let flap = 0; flap < 2; flap++) await ipBatch(w.name, ['link set eth1 down', 'link set eth1 up']);
      const quiet = await w.monitor();
      expect(await unsettledLinks(w.name)).toEqual([]);
      await w.snapshot(); // reads are not writes
      expect(await quiet.stop()).toEqual([]);
      const busy = await w.monitor();
      await w.ip(['address', 'add', '10.0.1.99/32', 'dev', 'eth1']);
      const lines = await busy.stop();
      expect(lines.some((l) => l.includes('10.0.1.99/32'))).toBe(true);
      expect(lines.some((l) => l.includes('192.0.2.254'))).toBe(false); // markers are hidden
    });
  });

  test('a namespace left by a dead test process is swept', async ({ expect }) => {
    let pid = 4_000_000;
    while ((() => { try { process.kill(pid, 0); return true; } catch { return false; } })()) pid--;
    const stale = `cnt-${pid}-0`;
    execFileSync('ip', ['netns', 'add', stale]);
    sweepStaleNamespaces();
    expect(namespaces()).not.toContain(stale);
  });

  // The expectations must be exactly what SPEC's commands produce; checkConfigured is the check
  // main-job.test.ts applies to the real program.
  for (const provider of ['ec2', 'azure', 'gcp'] as const) {
    test(`${provider}: SPEC §5 commands reach expectedState and pass checkConfigured`, async ({ expect }) => {
      const w = await createWorld({ fixture: loadFixture(FIXTURES[provider]), dhcp: true, foreign: true });
      await withWorld(w, async () => {
        const before = await w.snapshot();
        expect(await checkConfigured(w)).not.toEqual([]); // the check can fail
        await ipBatch(w.name, referenceBatch(w.nics, { present: before.addresses }));
        expect(await checkConfigured(w)).toEqual([]);
        const after = await w.snapshot();
        const want = expectedState(w.nics);
        expect(snapshotDelta(before, after).removed).toEqual(before.links.filter((l) => !after.links.includes(l)).map((l) => `link ${l}`));
        expect(want.rules.length).toBeGreaterThan(0);
      });
    });
  }
});
