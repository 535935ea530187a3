// Issue 6, metadata that is readable but wrong for one interface: bad types, a key that keeps
// failing, a MAC listed twice, no addresses, a MAC with no link, MACs in other spellings.
// End to end (real binary, namespace world): the interface whose entry is bad is held back
// exactly as it is, even when its entry seems to drop addresses; the others keep working; one
// warning line names the MAC; and when the entry is good again, only what the metadata really
// removed goes. The parsing of Azure and GCP documents that providers.test.ts does not cover
// runs in process at the end of the file.
import { afterEach, describe, expect, test, type ExpectStatic } from 'vitest';
import { HttpTransport, ImdsError } from '../../src/imds/http.js';
import { createClient } from '../../src/imds/provider.js';
import { checkConfigured, snapshotDelta } from '../support/assertions.js';
import { withoutSecondary } from '../support/expected.js';
import { cloneFixture, editJson, loadFixture, PATHS, withoutLocalRoute, type Fixture } from '../support/fixture.js';
import { createMockImdsServer } from '../support/mock-imds.js';
import { createWorld, describeRun, runCloudNetwork, type RunResult, type World, type WorldNic } from '../support/world.js';

const BASE = 10000;
const GLOBAL_RULE_PRIORITY = String(BASE + 9999);
const MACS = PATHS.ec2Macs;

// ---------------------------------------------------------------------------------------------
// Local helpers

const nonEmpty = (text: string): string[] => text.split('\n').filter((line) => line.trim() !== '');
const errorLines = (text: string): string[] => nonEmpty(text).filter((line) => line.startsWith('error:'));
/** `warning:` lines, without the test machine's "no cloud-network user, running as root". */
const warningLines = (text: string): string[] =>
  nonEmpty(text).filter((line) => line.startsWith('warning:') && !/user cloud-network does not exist/.test(line));
const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

async function runOk(world: World, expect: ExpectStatic): Promise<RunResult> {
  const r = await runCloudNetwork(world, ['--once']);
  expect(r.exitCode, describeRun(r)).toBe(0);
  expect(errorLines(r.stderr), describeRun(r)).toEqual([]);
  return r;
}

/** Drops the last address of NIC `index`: the address and its two rules must go. */
const dropLastAddress = (index: number) => withoutSecondary(index, (addresses) => addresses[addresses.length - 1]!);

interface HeldBackCase {
  fixture: string;
  /** World index of the NIC whose metadata entry turns bad. */
  nic: number;
  /** Spoils that NIC's entry (and, where it can, pretends that its other addresses left). */
  hostile(world: World, nic: WorldNic): Promise<void>;
  /** The reason in the one warning line (after "metadata entry MAC skipped: "). */
  reason: RegExp;
  /** Good metadata again, that really removes one item; and what must disappear with it. */
  heal(original: Fixture, nics: WorldNic[]): { fixture: Fixture; removed: string[] };
}

/**
 * Converged world, drift (global rule deleted), bad entry for one NIC: --once exits 0 with one
 * warning naming the MAC, repairs the drift and leaves the bad NIC exactly as it was. Entry
 * good again: only what the healed metadata dropped is removed.
 */
async function holdsBackOneNic(expect: ExpectStatic, c: HeldBackCase): Promise<void> {
  const original = loadFixture(c.fixture);
  const world = await createWorld({ fixture: original, dhcp: true, foreign: true });
  try {
    await runOk(world, expect);
    expect(await checkConfigured(world)).toEqual([]);
    const converged = await world.snapshot();
    await world.ip(['rule', 'del', 'priority', GLOBAL_RULE_PRIORITY]);
    const nic = world.nic(c.nic);
    await c.hostile(world, nic);

    const r = await runOk(world, expect);
    // "metadata entry MAC [(eth1)] skipped[, …]: REASON": the MAC and the reason are what matter.
    const line = new RegExp(`^warning: metadata entry ${escape(nic.mac)}\\b[^:]*\\bskipped\\b[^:]*: ${c.reason.source}`);
    expect(warningLines(r.stderr), describeRun(r)).toEqual([expect.stringMatching(line)]);
    expect(snapshotDelta(converged, await world.snapshot()), 'held-back NIC untouched, drift repaired').toEqual({ added: [], removed: [] });

    await world.mock.clearFaults();
    const { fixture, removed } = c.heal(original, world.nics);
    await world.mock.setFixture(fixture);
    const healed = await runOk(world, expect);
    expect(warningLines(healed.stderr), describeRun(healed)).toEqual([]);
    expect(snapshotDelta(converged, await world.snapshot())).toEqual({ added: [], removed });
  } finally {
    await world.destroy();
  }
}

/** EC2 three-enis eth1 (0a:75:69:92:e2:16, key 1): its entry says only the primary is left, plus `patch`. */
function ec2Eth1(patch: (key: (name: string) => string, nic: WorldNic) => Record<string, string>): HeldBackCase['hostile'] {
  return async (world, nic) => {
    const key = (name: string) => `${MACS}${nic.mac}/${name}`;
    await world.mock.patch({ paths: { [key('local-ipv4s')]: nic.addresses[0]!, ...patch(key, nic) } });
  };
}

const ec2Case = (hostile: HeldBackCase['hostile'], reason: RegExp): HeldBackCase => ({
  fixture: 'ec2/three-enis',
  nic: 1,
  hostile,
  reason,
  heal: dropLastAddress(1),
});

// ---------------------------------------------------------------------------------------------

describe.concurrent('hostile metadata for one interface: it is held back, the others work (--once)', () => {
  test('EC2 one per-MAC key failing (500) while the others answer: that NIC held back, one warning', async ({ expect }) => {
    await holdsBackOneNic(expect, ec2Case(async (world, nic) => {
      await ec2Eth1(() => ({}))(world, nic);
      await world.mock.addFault({ kind: 'status', status: 500, path: `${MACS}${nic.mac}/local-ipv4s` });
    }, /metadata request GET \S+\/local-ipv4s failed: HTTP 500 \(after 3 attempts\)$/));
  });

  test('EC2 one per-MAC key answering HTML: that NIC held back, one warning', async ({ expect }) => {
    await holdsBackOneNic(expect, ec2Case(async (world, nic) => {
      await world.mock.addFault({ kind: 'html', path: `${MACS}${nic.mac}/local-ipv4s` });
    }, /local-ipv4s entry "<!DOCTYPE html>" is not an IPv4 address$/));
  });

  test('EC2 one per-MAC key cut off mid-body: that NIC held back, one warning', async ({ expect }) => {
    await holdsBackOneNic(expect, ec2Case(async (world, nic) => {
      await world.mock.addFault({ kind: 'truncate', abort: true, path: `${MACS}${nic.mac}/local-ipv4s` });
    }, /metadata request GET \S+\/local-ipv4s failed: answer cut off \(after 3 attempts\)$/));
  });

  test('EC2 device-number abc: that NIC held back, one warning', async ({ expect }) => {
    await holdsBackOneNic(expect, ec2Case(ec2Eth1((key) => ({ [key('device-number')]: 'abc' })), /device-number "abc" is not a small integer$/));
  });

  test('EC2 subnet prefix 33: that NIC held back, one warning', async ({ expect }) => {
    await holdsBackOneNic(
      expect,
      ec2Case(ec2Eth1((key) => ({ [key('subnet-ipv4-cidr-block')]: '172.31.32.0/33' })), /subnet-ipv4-cidr-block "172\.31\.32\.0\/33" is not an IPv4 subnet of \/8 to \/30$/),
    );
  });

  test('EC2 address 999.1.1.1: that NIC held back, one warning', async ({ expect }) => {
    await holdsBackOneNic(
      expect,
      ec2Case(ec2Eth1((key, nic) => ({ [key('local-ipv4s')]: `${nic.addresses[0]}\n999.1.1.1` })), /local-ipv4s entry "999\.1\.1\.1" is not an IPv4 address$/),
    );
  });

  test('EC2 IPv6 address where IPv4 is expected: that NIC held back, one warning', async ({ expect }) => {
    await holdsBackOneNic(
      expect,
      ec2Case(ec2Eth1((key, nic) => ({ [key('local-ipv4s')]: `${nic.addresses[0]}\n2600:1f16:292:100::1` })), /local-ipv4s entry "2600:1f16:292:100::1" is not an IPv4 address$/),
    );
  });

  test('EC2 NIC with no addresses: that NIC held back, one warning', async ({ expect }) => {
    await holdsBackOneNic(expect, ec2Case(ec2Eth1((key) => ({ [key('local-ipv4s')]: '' })), /no private IPv4 address \(local-ipv4s\)$/));
  });

  test('Azure NIC with no addresses: that NIC held back, one warning', async ({ expect }) => {
    await holdsBackOneNic(expect, {
      fixture: 'azure/three-nics',
      nic: 1,
      hostile: async (world) =>
        world.mock.setFixture(
          editJson(cloneFixture(loadFixture('azure/three-nics')), PATHS.azureInstance, (doc: { network: { interface: { ipv4: { ipAddress: unknown[] } }[] } }) => {
            doc.network.interface[1]!.ipv4.ipAddress = [];
          }),
        ),
      reason: /interface 1: no private IPv4 address$/,
      heal: dropLastAddress(1),
    });
  });

  test('EC2 two NICs with one MAC (listed twice): that NIC held back, one warning', async ({ expect }) => {
    await holdsBackOneNic(
      expect,
      ec2Case(
        ec2Eth1((_key, nic) => ({ [MACS]: ['0a:07:84:3d:6e:38/', `${nic.mac}/`, `${nic.mac}/`, '0a:5d:3e:11:7c:9a/'].join('\n') })),
        /MAC listed 2 times in the metadata$/,
      ),
    );
  });

  // Azure keys NICs by position: when entry 2 carries entry 1's MAC, eth2's MAC is absent from
  // a document that is visibly corrupt. Neither eth1 nor eth2 may lose anything, and eth0, the
  // only interface left managed, must keep its policy routing.
  test('Azure two NICs with one MAC (entry 2 carries entry 1 MAC): nothing of eth1 or eth2 removed, eth0 keeps its policy routing', async ({ expect }) => {
    await holdsBackOneNic(expect, {
      fixture: 'azure/three-nics',
      nic: 1,
      hostile: async (world) =>
        world.mock.setFixture(
          editJson(cloneFixture(loadFixture('azure/three-nics')), PATHS.azureInstance, (doc: { network: { interface: { macAddress: string }[] } }) => {
            doc.network.interface[2]!.macAddress = doc.network.interface[1]!.macAddress;
          }),
        ),
      reason: /MAC listed 2 times in the metadata$/,
      heal: dropLastAddress(1),
    });
  });

  // With PolicyRouting=auto, policy routing is on with >= 2 managed interfaces. A NIC held back
  // for a bad entry is still there: its neighbour must not lose its rules and routes.
  test('GCP one of two NICs with a bad entry (mtu abc): it is held back and the other keeps its policy routing', async ({ expect }) => {
    await holdsBackOneNic(expect, {
      fixture: 'gcp/two-nics-aliases',
      nic: 1,
      hostile: async (world) =>
        world.mock.setFixture(
          editJson(cloneFixture(loadFixture('gcp/two-nics-aliases')), PATHS.gcpRoot, (doc: { instance: { networkInterfaces: { mtu: unknown; ipAliases: string[] }[] } }) => {
            doc.instance.networkInterfaces[1]!.mtu = 'abc';
            doc.instance.networkInterfaces[1]!.ipAliases = [];
          }),
        ),
      reason: /interface 1: mtu "abc" is out of range$/,
      heal: (original, nics) => ({
        fixture: withoutLocalRoute(original, nics[1]!.mac, '10.0.1.64/26'),
        removed: [`route table local local 10.0.1.64/26 dev ${nics[1]!.name} proto 149`],
      }),
    });
  });
});

describe.concurrent('hostile metadata: MACs (--once)', () => {
  test('a metadata MAC with no kernel link: skipped with one warning, the others configured; configured once the link appears', async ({ expect }) => {
    const world = await createWorld({ fixture: loadFixture('ec2/three-enis'), dhcp: true, foreign: true });
    try {
      const ghost = '0a:00:00:00:00:99';
      const fixture = await world.mock.fixture();
      await world.mock.patch({
        paths: {
          [MACS]: `${fixture.paths[MACS]}\n${ghost}/`,
          [`${MACS}${ghost}/device-number`]: '3',
          [`${MACS}${ghost}/local-ipv4s`]: '172.31.50.99',
          [`${MACS}${ghost}/subnet-ipv4-cidr-block`]: '172.31.48.0/20',
        },
      });
      const r = await runOk(world, expect);
      expect(warningLines(r.stderr), describeRun(r)).toEqual([`warning: metadata interface ${ghost} has no network link on this machine; skipped`]);
      expect(await checkConfigured(world)).toEqual([]);
      const before = await world.snapshot();

      const link = await world.hotplug({ mac: ghost, gateway: '172.31.48.1', addresses: ['172.31.50.99'] });
      const healed = await runOk(world, expect);
      expect(warningLines(healed.stderr), describeRun(healed)).toEqual([]);
      const snap = await world.snapshot();
      expect(snap.addresses).toContain(`${link} 172.31.50.99/20`);
      expect(snap.rules).toEqual(expect.arrayContaining([
        '10003: from 172.31.50.99 lookup 10003 suppress_prefixlength 0 proto 149',
        '20003: from 172.31.50.99 lookup 10003 proto 149',
      ]));
      expect(snap.routes).toContain(`table 10003 default via 172.31.48.1 dev ${link} onlink proto 149`);
      // Same subnet as eth2: the other interfaces' tables gain nothing and lose nothing.
      expect(snapshotDelta(before, snap).removed).toEqual([]);
    } finally {
      await world.destroy();
    }
  });

  test('Azure MACs with colons, with dashes, lower case without separators: all matched, configured', async ({ expect }) => {
    const original = loadFixture('azure/three-nics');
    const world = await createWorld({ fixture: original, dhcp: true, foreign: true });
    try {
      const spellings = [
        (hex: string) => hex.toLowerCase().match(/../g)!.join(':'),
        (hex: string) => hex.toUpperCase().match(/../g)!.join('-'),
        (hex: string) => hex.toLowerCase(),
      ];
      await world.mock.setFixture(
        editJson(cloneFixture(original), PATHS.azureInstance, (doc: { network: { interface: { macAddress: string }[] } }) => {
          doc.network.interface.forEach((nic, i) => (nic.macAddress = spellings[i]!(nic.macAddress)));
        }),
      );
      const r = await runOk(world, expect);
      expect(warningLines(r.stderr), describeRun(r)).toEqual([]);
      expect(await checkConfigured(world)).toEqual([]);
    } finally {
      await world.destroy();
    }
  });

  test('GCP MACs in upper case and with dashes: all matched, configured', async ({ expect }) => {
    const original = loadFixture('gcp/two-nics-aliases');
    const world = await createWorld({ fixture: original, dhcp: true, foreign: true });
    try {
      await world.mock.setFixture(
        editJson(cloneFixture(original), PATHS.gcpRoot, (doc: { instance: { networkInterfaces: { mac: string }[] } }) => {
          const [first, second] = doc.instance.networkInterfaces;
          first!.mac = first!.mac.toUpperCase();
          second!.mac = second!.mac.replace(/:/g, '-');
        }),
      );
      const r = await runOk(world, expect);
      expect(warningLines(r.stderr), describeRun(r)).toEqual([]);
      expect(await checkConfigured(world)).toEqual([]);
    } finally {
      await world.destroy();
    }
  });

  // The listing names the per-MAC directories: whatever spelling it uses, the keys live under
  // that same spelling.
  test('EC2 MAC listing in upper case (keys served under that spelling): all matched, configured', async ({ expect }) => {
    const original = loadFixture('ec2/three-enis');
    const world = await createWorld({ fixture: original, dhcp: true, foreign: true });
    try {
      const upper = (path: string) => path.replace(/([0-9a-f]{2}:){5}[0-9a-f]{2}/g, (mac) => mac.toUpperCase());
      const shouting: Fixture = {
        provider: 'ec2',
        paths: Object.fromEntries(Object.entries(original.paths).map(([path, body]) => [upper(path), path === MACS || path.endsWith('/mac') ? upper(body) : body])),
        notFound: (original.notFound ?? []).map(upper),
      };
      expect(shouting.paths[MACS]).toMatch(/^0A:07:84:3D:6E:38\//);
      await world.mock.setFixture(shouting);
      const r = await runCloudNetwork(world, ['--once']);
      expect(r.exitCode, describeRun(r)).toBe(0);
      expect(warningLines(r.stderr), describeRun(r)).toEqual([]);
      expect(await checkConfigured(world)).toEqual([]);
    } finally {
      await world.destroy();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// In process: Azure and GCP documents with wrong types (EC2's are in providers.test.ts and above).

describe('hostile metadata parsing (in process)', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup();
  });

  async function fetchWith(fixture: Fixture) {
    const mock = createMockImdsServer(fixture);
    const port = await mock.listen(0, '127.0.0.1');
    const transport = new HttpTransport(`http://127.0.0.1:${port}`);
    cleanups.push(() => transport.close(), () => mock.close());
    return createClient(fixture.provider, transport).fetchMetadata({ documents: true });
  }

  type AzureNic = { macAddress: unknown; ipv4: { ipAddress: { privateIpAddress: unknown }[]; subnet: { address: unknown; prefix: unknown }[] } };
  const azure = (edit: (nics: AzureNic[], doc: Record<string, unknown>) => void): Fixture =>
    editJson(cloneFixture(loadFixture('azure/three-nics')), PATHS.azureInstance, (doc: { network: { interface: AzureNic[] } }) =>
      edit(doc.network.interface, doc as unknown as Record<string, unknown>),
    );
  type GcpNic = Record<string, unknown>;
  const gcp = (edit: (nics: GcpNic[], doc: { instance: Record<string, unknown> }) => void): Fixture =>
    editJson(cloneFixture(loadFixture('gcp/two-nics-aliases')), PATHS.gcpRoot, (doc: { instance: { networkInterfaces: GcpNic[] } }) =>
      edit(doc.instance.networkInterfaces, doc),
    );

  test.each([
    ['prefix 33', (n: AzureNic[]) => (n[1]!.ipv4.subnet[0]!.prefix = '33'), /interface 1: ipv4\.subnet\[0\] .* is not an IPv4 subnet/],
    ['prefix abc', (n: AzureNic[]) => (n[1]!.ipv4.subnet[0]!.prefix = 'abc'), /interface 1: ipv4\.subnet\[0\] .* is not an IPv4 subnet/],
    ['address 999.1.1.1', (n: AzureNic[]) => (n[1]!.ipv4.ipAddress[1]!.privateIpAddress = '999.1.1.1'), /interface 1: privateIpAddress "999\.1\.1\.1" is not an IPv4 address/],
    ['IPv6 where IPv4 is expected', (n: AzureNic[]) => (n[1]!.ipv4.ipAddress[1]!.privateIpAddress = 'fd15::9'), /interface 1: privateIpAddress "fd15::9" is not an IPv4 address/],
    ['address as a number', (n: AzureNic[]) => (n[1]!.ipv4.ipAddress[1]!.privateIpAddress = 167772426), /interface 1: privateIpAddress "167772426" is not an IPv4 address/],
    ['no addresses', (n: AzureNic[]) => (n[1]!.ipv4.ipAddress = []), /interface 1: no private IPv4 address/],
    ['a primary outside its subnet', (n: AzureNic[]) => (n[1]!.ipv4.ipAddress[0]!.privateIpAddress = '10.9.9.9'), /interface 1: primary address 10\.9\.9\.9 is not in subnet 10\.0\.1\.0\/24/],
  ])('Azure entry with %s: only that NIC is rejected, with a reason', async (_what, edit, reason) => {
    const metadata = await fetchWith(azure((nics) => edit(nics)));
    expect(metadata.interfaces.map((nic) => nic.mac)).toEqual(['00:0d:3a:e7:99:b7', '00:0d:3a:e7:a1:c2']);
    expect(metadata.rejected).toEqual([{ mac: '00:0d:3a:e7:9b:59', reason: expect.stringMatching(reason) }]);
  });

  test.each([
    ['a MAC that is not one', (n: AzureNic[]) => (n[1]!.macAddress = 'not-a-mac')],
    ['null instead of an interface', (n: unknown[]) => (n[1] = null)],
  ])('Azure entry with %s: rejected without a MAC (so absent MACs are frozen)', async (_what, edit) => {
    const metadata = await fetchWith(azure((nics) => edit(nics as AzureNic[])));
    expect(metadata.interfaces).toHaveLength(2);
    expect(metadata.rejected).toEqual([{ reason: expect.stringMatching(/^interface 1: /) }]);
  });

  test('Azure network.interface that is an object, not a list: the whole answer is refused', async () => {
    await expect(fetchWith(azure((_nics, doc) => ((doc.network as Record<string, unknown>).interface = { 0: {} })))).rejects.toThrow(
      new ImdsError('Azure metadata document has no network.interface list'),
    );
  });

  test.each([
    ['ip IPv6', (n: GcpNic[]) => (n[1]!.ip = 'fd00::2'), /interface 1: ip "fd00::2" is not an IPv4 address/],
    ['ip 999.1.1.1', (n: GcpNic[]) => (n[1]!.ip = '999.1.1.1'), /interface 1: ip "999\.1\.1\.1" is not an IPv4 address/],
    ['a non-contiguous subnetmask', (n: GcpNic[]) => (n[1]!.subnetmask = '255.0.255.0'), /interface 1: subnetmask "255\.0\.255\.0" is not a netmask/],
    ['gateway abc', (n: GcpNic[]) => (n[1]!.gateway = 'abc'), /interface 1: gateway "abc" is not an IPv4 address/],
    ['mtu abc', (n: GcpNic[]) => (n[1]!.mtu = 'abc'), /interface 1: mtu "abc" is out of range/],
    ['mtu 100000', (n: GcpNic[]) => (n[1]!.mtu = 100000), /interface 1: mtu 100000 is out of range/],
    ['an alias range with prefix 33', (n: GcpNic[]) => (n[1]!.ipAliases = ['10.0.1.64/33']), /interface 1: alias or forwarded IP "10\.0\.1\.64\/33" is not an IPv4 range/],
    ['a forwarded IPv6 address', (n: GcpNic[]) => (n[1]!.forwardedIps = ['2600::1']), /interface 1: alias or forwarded IP "2600::1" is not an IPv4 range/],
  ])('GCP entry with %s: only that NIC is rejected, with a reason', async (_what, edit, reason) => {
    const metadata = await fetchWith(gcp((nics) => edit(nics)));
    expect(metadata.interfaces.map((nic) => nic.mac)).toEqual(['42:01:0a:00:00:02']);
    expect(metadata.rejected).toEqual([{ mac: '42:01:0a:00:01:02', reason: expect.stringMatching(reason) }]);
  });

  test('GCP networkInterfaces that is a string: the whole answer is refused', async () => {
    await expect(fetchWith(gcp((_nics, doc) => (doc.instance.networkInterfaces = 'eth0')))).rejects.toThrow(
      new ImdsError('GCP metadata document has no instance.networkInterfaces list'),
    );
  });

  test('GCP answer with a JSON array instead of an object: the whole answer is refused', async () => {
    const fixture = cloneFixture(loadFixture('gcp/two-nics-aliases'));
    fixture.paths[PATHS.gcpRoot] = '[]';
    await expect(fetchWith(fixture)).rejects.toThrow(new ImdsError('GCP metadata document is not a JSON object'));
  });

  test('Azure answer that is a JSON string: the whole answer is refused', async () => {
    const fixture = cloneFixture(loadFixture('azure/three-nics'));
    fixture.paths[PATHS.azureInstance] = '"network"';
    await expect(fetchWith(fixture)).rejects.toThrow(new ImdsError('Azure metadata document is not a JSON object'));
  });
});
