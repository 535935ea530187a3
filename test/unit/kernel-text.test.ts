// The two places where ip's text output is parsed: batch failures and monitor events.
import { describe, expect, it } from 'vitest';
import { parseBatchFailures } from '../../src/apply.js';
import { parseMonitorLine } from '../../src/monitor.js';

describe('ip -force -batch failures', () => {
  it('maps each "Command failed -:N" to its script line and message', () => {
    const script = 'link set dev eth1 up\naddress add 10.0.0.6/32 dev eth9\nroute replace default via 10.9.9.9 dev eth1 table 10001 proto 149 onlink\n';
    const stderr = 'Cannot find device "eth9"\nCommand failed -:2\nError: Nexthop has invalid gateway.\nCommand failed -:3\n';
    expect(parseBatchFailures(script, stderr)).toEqual([
      { line: 'address add 10.0.0.6/32 dev eth9', error: 'Cannot find device "eth9"' },
      { line: 'route replace default via 10.9.9.9 dev eth1 table 10001 proto 149 onlink', error: 'Error: Nexthop has invalid gateway.' },
    ]);
  });

  it('reports a failure it cannot place as the whole batch', () => {
    expect(parseBatchFailures('link set dev eth1 up\n', 'RTNETLINK answers: Operation not permitted\n')).toEqual([
      { line: '(batch)', error: 'RTNETLINK answers: Operation not permitted' },
    ]);
  });
});

describe('ip -o monitor label lines', () => {
  it.each([
    [
      '[LINK]3: eth1@if4: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default \\    link/ether 0A:75:69:92:E2:16 brd ff:ff:ff:ff:ff:ff',
      { kind: 'link', deleted: false, name: 'eth1', mac: '0a:75:69:92:e2:16', hasMaster: false },
    ],
    [
      '[LINK]Deleted 5: vf1@NONE: <BROADCAST,MULTICAST> mtu 1500 qdisc noop master br0 state DOWN \\    link/ether 0a:75:69:92:e2:16 brd ff:ff:ff:ff:ff:ff',
      { kind: 'link', deleted: true, name: 'vf1', mac: '0a:75:69:92:e2:16', hasMaster: true },
    ],
    ['[ADDR]Deleted 3: eth1    inet 172.31.40.15/32 scope global noprefixroute eth1\\       valid_lft forever', { kind: 'address', deleted: true, name: 'eth1' }],
    ['[RULE]Deleted 20001:\tfrom 172.31.40.15 lookup 10001 proto 149', { kind: 'rule', deleted: true, ours: true }],
    ['[ROUTE]Deleted default via 172.31.32.1 dev eth1 table 10001 proto cloud-network onlink', { kind: 'route', deleted: true, ours: true }],
    ['[ROUTE]10.0.0.0/24 dev eth0 proto kernel scope link src 10.0.0.5', { kind: 'route', deleted: false, ours: false }],
  ])('%s', (line, event) => {
    expect(parseMonitorLine(line)).toEqual(event);
  });

  it('ignores what it does not know', () => {
    expect(parseMonitorLine('[NEIGH]10.0.0.1 dev eth0 lladdr 00:11:22:33:44:55 REACHABLE')).toBeUndefined();
    expect(parseMonitorLine('Timestamp: Thu Dec  3')).toBeUndefined();
  });
});
