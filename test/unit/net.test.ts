import { describe, expect, it } from 'vitest';
import { firstHost, normalizeMac, parseIPv4, parseIPv4Cidr, parseIPv4Range, prefixFromNetmask } from '../../src/net.js';

describe('net', () => {
  it('normalizes MACs from every cloud', () => {
    expect(normalizeMac('000D3AE799B7')).toBe('00:0d:3a:e7:99:b7');
    expect(normalizeMac('0A-07-84-3D-6E-38')).toBe('0a:07:84:3d:6e:38');
    expect(normalizeMac('0a:07:84:3d:6e:38')).toBe('0a:07:84:3d:6e:38');
    expect(normalizeMac('0a:07:84:3d:6e')).toBeUndefined();
    expect(normalizeMac('<html>')).toBeUndefined();
  });

  it('accepts only plain dotted IPv4', () => {
    expect(parseIPv4(' 10.0.1.4 ')).toBe('10.0.1.4');
    for (const bad of ['999.1.1.1', '10.1', 'fd15::5', '10.0.0.1/24', '']) expect(parseIPv4(bad)).toBeUndefined();
  });

  it('parses CIDRs and clears host bits', () => {
    expect(parseIPv4Cidr('172.31.44.13/20')).toEqual({ network: '172.31.32.0', prefixLength: 20 });
    expect(parseIPv4Cidr('10.0.0.0/33')).toBeUndefined();
    expect(parseIPv4Cidr('10.0.0.0')).toBeUndefined();
    expect(parseIPv4Range('34.120.10.5')).toBe('34.120.10.5/32');
    expect(firstHost({ network: '10.0.1.0', prefixLength: 24 })).toBe('10.0.1.1');
  });

  it('turns netmasks into prefixes', () => {
    expect(prefixFromNetmask('255.255.240.0')).toBe(20);
    expect(prefixFromNetmask('255.0.255.0')).toBeUndefined();
  });
});
