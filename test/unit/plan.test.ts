import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG, type Config } from '../../src/config.js';
import type { KernelState } from '../../src/kernel.js';
import type { InstanceMetadata, InterfaceMetadata } from '../../src/model.js';
import { plan } from '../../src/plan.js';
import { recordOwnership } from '../../src/reconcile.js';
import { renderScript } from '../../src/render.js';
import { EMPTY_STATE, type StateFile } from '../../src/state.js';

const MAC0 = '0a:00:00:00:00:00';
const MAC1 = '0a:00:00:00:00:01';

function nic(key: number, mac: string, addresses: string[]): InterfaceMetadata {
  return {
    mac,
    key,
    addresses,
    primaryPrefixLength: 24,
    subnet: { network: `10.0.${key}.0`, prefixLength: 24 },
    gateway: `10.0.${key}.1`,
    linkRoute: 'subnet',
    localRoutes: [],
  };
}

const metadata = (interfaces: InterfaceMetadata[], rejected: InstanceMetadata['rejected'] = []): InstanceMetadata => ({
  provider: 'ec2',
  interfaces,
  rejected,
  documents: { system: {}, network: {} },
});

/** Two up links; each already carries the addresses given. */
function kernel(addresses: Record<number, string[]> = {}, extra: Partial<KernelState> = {}): KernelState {
  return {
    links: [
      { index: 2, name: 'eth0', mac: MAC0, up: true, mtu: 1500 },
      { index: 3, name: 'eth1', mac: MAC1, up: true, mtu: 1500 },
      ...(extra.links ?? []),
    ],
    addresses: Object.entries(addresses).flatMap(([ifindex, list]) =>
      list.map((cidr) => ({ ifindex: Number(ifindex), address: cidr.split('/')[0]!, prefixLength: Number(cidr.split('/')[1]), scope: 0 })),
    ),
    rules: extra.rules ?? [],
    routes: extra.routes ?? [],
  };
}

const ourRule = (priority: number, src: string | undefined, table: number, suppress?: number) => ({
  priority,
  src,
  table,
  suppressPrefixLength: suppress,
  protocol: 149,
  hasOtherSelectors: false,
});

const state = (owned: StateFile['owned']): StateFile => ({ ...EMPTY_STATE, owned });
const script = (...args: Parameters<typeof plan>) => renderScript(plan(...args).changes);
const config = (overrides: Partial<Config> = {}): Config => ({ ...DEFAULT_CONFIG, ...overrides });

const two = metadata([nic(0, MAC0, ['10.0.0.5', '10.0.0.6']), nic(1, MAC1, ['10.0.1.5'])]);

describe('planner', () => {
  it('leaves foreign addresses, rules and routes alone', () => {
    const k = kernel(
      { 2: ['10.0.0.5/24', '192.0.2.10/24'] },
      {
        rules: [{ priority: 500, src: '192.0.2.10/32', table: 200, protocol: 4, hasOtherSelectors: false }],
        routes: [{ table: 10001, type: 1, dst: '203.0.113.0/24', dev: 'eth1', gateway: '10.0.1.1', scope: 0, protocol: 4, metric: 0, onlink: true }],
      },
    );
    const text = script(two, k, config(), EMPTY_STATE);
    expect(text).not.toMatch(/192\.0\.2\.10|203\.0\.113|priority 500/);
    expect(text).not.toMatch(/ del /);
  });

  it('removes an owned address that left the metadata, with its rules', () => {
    const configured = kernel({ 2: ['10.0.0.5/24', '10.0.0.6/32', '10.0.0.7/32'], 3: ['10.0.1.5/24'] });
    const full = metadata([nic(0, MAC0, ['10.0.0.5', '10.0.0.6', '10.0.0.7']), nic(1, MAC1, ['10.0.1.5'])]);
    // First plan against the configured kernel tells which rules exist; apply them to the snapshot.
    configured.rules = plan(full, configured, config(), EMPTY_STATE).changes.flatMap((change) =>
      change.kind === 'rule-add' ? [{ ...change.rule, protocol: 149, hasOtherSelectors: false }] : [],
    );
    const owned = state({ [MAC0]: { addresses: ['10.0.0.6/32', '10.0.0.7/32'], table: 10000 } });
    const text = script(metadata([nic(0, MAC0, ['10.0.0.5', '10.0.0.6']), nic(1, MAC1, ['10.0.1.5'])]), configured, config(), owned);
    expect(text.split('\n').filter((line) => /^(rule|address) /.test(line))).toEqual([
      'rule del priority 10000 from 10.0.0.7 lookup 10000 suppress_prefixlength 0 proto 149',
      'rule del priority 20000 from 10.0.0.7 lookup 10000 proto 149',
      'address del 10.0.0.7/32 dev eth0',
    ]);
  });

  it('never removes an address that state.json does not record', () => {
    const k = kernel({ 2: ['10.0.0.5/24', '10.0.0.6/32', '10.0.0.9/32'], 3: ['10.0.1.5/24'] });
    expect(script(two, k, config(), state({ [MAC0]: { addresses: ['10.0.0.6/32'] } }))).not.toMatch(/address del/);
  });

  it('freezes an interface whose metadata entry was rejected', () => {
    const k = kernel(
      { 2: ['10.0.0.5/24'], 3: ['10.0.1.5/24', '10.0.1.6/32'] },
      { rules: [ourRule(10001, '10.0.1.6/32', 10001, 0), ourRule(20001, '10.0.1.6/32', 10001)] },
    );
    const owned = state({ [MAC1]: { addresses: ['10.0.1.6/32'], table: 10001 } });
    const text = script(metadata([nic(0, MAC0, ['10.0.0.5'])], [{ mac: MAC1, reason: 'bad' }]), k, config(), owned);
    expect(text).not.toMatch(/10\.0\.1\.6/);
    expect(text).not.toMatch(/ del /);
  });

  it('removes nothing from absent interfaces when a rejected entry has no readable MAC', () => {
    const k = kernel({ 3: ['10.0.1.5/24', '10.0.1.6/32'] }, { rules: [ourRule(20001, '10.0.1.6/32', 10001)] });
    const owned = state({ [MAC1]: { addresses: ['10.0.1.6/32'], table: 10001 } });
    const text = script(metadata([nic(0, MAC0, ['10.0.0.5'])], [{ reason: 'listing entry is not a MAC' }]), k, config(), owned);
    expect(text).not.toMatch(/ del /);
  });

  it('deletes a duplicated rule of ours once', () => {
    const single = metadata([nic(0, MAC0, ['10.0.0.5'])]);
    const k = kernel({ 2: ['10.0.0.5/24'] }, { rules: [ourRule(10000, '10.0.0.5/32', 10000, 0), ourRule(10000, '10.0.0.5/32', 10000, 0)] });
    expect(script(single, k, config({ policyRouting: 'yes' }), EMPTY_STATE).match(/rule del/g)).toHaveLength(1);
  });

  it('does not replace a foreign route that holds the key it needs', () => {
    const k = kernel(
      { 2: ['10.0.0.5/24', '10.0.0.6/32'], 3: ['10.0.1.5/24'] },
      { routes: [{ table: 10000, type: 1, dst: '0.0.0.0/0', dev: 'eth0', gateway: '10.0.0.254', scope: 0, protocol: 4, metric: 0, onlink: true }] },
    );
    const result = plan(two, k, config(), EMPTY_STATE);
    expect(renderScript(result.changes)).not.toMatch(/default via 10\.0\.0\.1 dev eth0/);
    expect(result.notices.join('\n')).toMatch(/table 10000 already has a route to 0\.0\.0\.0\/0/);
  });

  it('drops the rules of an interface that is gone, and the global rule with the last one', () => {
    const k = kernel(
      { 2: ['10.0.0.5/24'] },
      { rules: [ourRule(10001, '10.0.1.5/32', 10001, 0), ourRule(20001, '10.0.1.5/32', 10001), ourRule(19999, undefined, 254, 0)] },
    );
    k.links = k.links.filter((link) => link.name !== 'eth1');
    const text = script(metadata([nic(0, MAC0, ['10.0.0.5'])]), k, config(), EMPTY_STATE);
    expect(text).toBe(
      [
        'rule del priority 10001 from 10.0.1.5 lookup 10001 suppress_prefixlength 0 proto 149',
        'rule del priority 20001 from 10.0.1.5 lookup 10001 proto 149',
        'rule del priority 19999 lookup main suppress_prefixlength 0 proto 149',
        '',
      ].join('\n'),
    );
  });

  it('never configures a link that has a master', () => {
    const k = kernel({ 2: ['10.0.0.5/24'] });
    k.links[1] = { ...k.links[1]!, master: 'br0' };
    const result = plan(two, k, config(), EMPTY_STATE);
    expect(result.managed.map((m) => m.link.name)).toEqual(['eth0']);
    expect(renderScript(result.changes)).not.toMatch(/eth1/);
  });

  it('brings a down link up and sets the metadata MTU', () => {
    const k = kernel({ 2: ['10.0.0.5/24'] });
    k.links[0] = { ...k.links[0]!, up: false };
    const withMtu = metadata([{ ...nic(0, MAC0, ['10.0.0.5']), mtu: 1460 }]);
    expect(script(withMtu, k, config(), EMPTY_STATE)).toBe('link set dev eth0 up\nlink set dev eth0 mtu 1460\n');
  });
});

describe('planner safety', () => {
  it('never writes into the table of an interface whose metadata is unreadable', () => {
    // eth1 now (wrongly) reports key 0 while eth0, which owns table 10000, could not be read.
    const k = kernel({ 2: ['10.0.0.5/24'], 3: ['10.0.1.5/24'] }, { rules: [ourRule(10000, '10.0.0.5/32', 10000, 0)] });
    const owned = state({ [MAC0]: { addresses: [], table: 10000, subnet: '10.0.0.0/24' } });
    const result = plan(metadata([nic(0, MAC1, ['10.0.1.5'])], [{ mac: MAC0, reason: 'unreadable' }]), k, config({ policyRouting: 'yes' }), owned);
    expect(renderScript(result.changes)).toBe('');
    expect(result.notices.join('\n')).toMatch(/eth1 .* would use table 10000, which belongs to an interface that is left as it is; held back/);
  });

  it('leaves a foreign route of another type that holds the destination it needs', () => {
    const k = kernel(
      { 2: ['10.0.0.5/24', '10.0.0.6/32'], 3: ['10.0.1.5/24'] },
      { routes: [{ table: 10000, type: 7, dst: '10.0.1.0/24', scope: 0, protocol: 4, metric: 0, onlink: false }] },
    );
    const result = plan(two, k, config(), EMPTY_STATE);
    expect(renderScript(result.changes)).not.toMatch(/route replace 10\.0\.1\.0\/24 .* table 10000/);
    expect(result.notices.join('\n')).toMatch(/table 10000 already has a route to 10\.0\.1\.0\/24/);
  });
});

describe('ownership record', () => {
  it('does not claim an address whose addition failed, even though it is on the link', () => {
    const single = metadata([nic(0, MAC0, ['10.0.0.5', '10.0.0.6'])]);
    const before = kernel({ 2: ['10.0.0.5/24'] });
    const planned = plan(single, before, config(), EMPTY_STATE);
    expect(renderScript(planned.changes)).toBe('address add 10.0.0.6/32 dev eth0 noprefixroute\n');
    // Another tool added it first; our line failed with "File exists".
    const after = kernel({ 2: ['10.0.0.5/24', '10.0.0.6/32'] });
    const failures = [{ line: 'address add 10.0.0.6/32 dev eth0 noprefixroute', error: 'RTNETLINK answers: File exists' }];
    expect(recordOwnership(EMPTY_STATE, planned, after, failures)[MAC0]?.addresses).toEqual([]);
    expect(recordOwnership(EMPTY_STATE, planned, after)[MAC0]?.addresses).toEqual(['10.0.0.6/32']);
  });
});

describe('interfaces that are left alone', () => {
  it('keeps an interface managed when only a VLAN or VF sharing its MAC is Unmanaged', () => {
    const k = kernel({ 2: ['10.0.0.5/24'], 3: ['10.0.1.5/24'] });
    k.links.push({ index: 4, name: 'eth1.5', mac: MAC1, up: true, mtu: 1500 }, { index: 5, name: 'enP1s1', mac: MAC1, up: true, mtu: 1500, master: 'eth1' });
    const result = plan(two, k, config({ unmanaged: ['eth1.*', 'enP*'] }), state({ [MAC1]: { addresses: [], table: 10001, subnet: '10.0.1.0/24' } }));
    expect(result.managed.map((nic) => nic.link.name)).toEqual(['eth0', 'eth1']);
  });

  it('leaves an interface whose rule priorities would come after the main table', () => {
    const far = metadata([nic(0, MAC0, ['10.0.0.5']), nic(2800, MAC1, ['10.0.1.5'])]);
    const result = plan(far, kernel({ 2: ['10.0.0.5/24'], 3: ['10.0.1.5/24'] }), config({ routeTableBase: 20000, policyRouting: 'yes' }), EMPTY_STATE);
    expect(result.managed.map((nic) => nic.link.name)).toEqual(['eth0']);
    expect(renderScript(result.changes)).not.toMatch(/priority (3[3-9]|[4-9]\d)\d{3}/);
    expect(result.notices.join('\n')).toMatch(/eth1 \(NIC key 2800\) would need rule priority 32800/);
  });

  it('keeps an owned primary whose deletion would take the other addresses of its subnet with it', () => {
    // The metadata moved eth1's primary from 10.0.1.5 to 10.0.1.6; an admin also has 10.0.1.50/24 there.
    const moved = metadata([nic(0, MAC0, ['10.0.0.5']), nic(1, MAC1, ['10.0.1.6'])]);
    const k = kernel({ 2: ['10.0.0.5/24'], 3: ['10.0.1.5/24', '10.0.1.50/24'] });
    const result = plan(moved, k, config(), state({ [MAC1]: { addresses: ['10.0.1.5/24'], table: 10001 } }));
    expect(renderScript(result.changes)).not.toMatch(/address del/);
    expect(result.notices.join('\n')).toMatch(/10\.0\.1\.5\/24 on eth1 left the metadata but is kept: a primary address is never deleted/);
  });

  it('keeps an owned primary alone on its subnet too: a metadata answer that leaves it out cannot cut the way in', () => {
    const moved = metadata([nic(0, MAC0, ['10.0.0.5']), nic(1, MAC1, ['10.0.1.6', '10.0.1.7'])]);
    const k = kernel({ 2: ['10.0.0.5/24'], 3: ['10.0.1.6/24', '10.0.1.9/24'] });
    k.addresses = k.addresses.filter((a) => a.address !== '10.0.1.6').concat({ ifindex: 3, address: '10.0.1.6', prefixLength: 32, scope: 0 });
    const result = plan(moved, k, config(), state({ [MAC1]: { addresses: ['10.0.1.9/24'], table: 10001 } }));
    const script = renderScript(result.changes);
    expect(script).not.toMatch(/address del 10\.0\.1\.9/);
    expect(result.notices.join('\n')).toMatch(/10\.0\.1\.9\/24 on eth1 left the metadata but is kept/);
  });
});
