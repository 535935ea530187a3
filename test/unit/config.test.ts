import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'smol-toml';
import { describe, expect, it } from 'vitest';
import { buildConfig, ConfigError, DEFAULT_CONFIG, loadConfig, matchesAny, parseDuration } from '../../src/config.js';

const fromToml = (text: string, env: NodeJS.ProcessEnv = {}) => buildConfig(parse(text), env);
const tempFile = (content: string) => {
  const path = join(mkdtempSync(join(tmpdir(), 'cn-config-')), 'cloud-network.toml');
  writeFileSync(path, content);
  return path;
};

describe('config', () => {
  it('reads every key', () => {
    const { config, problems } = fromToml(`
[System]
LogLevel = "DEBUG"
LogFormat = "json"
RefreshTimer = "1h30m"
[Network]
Address = "127.0.0.2"
Port = "6000"
Supplementary = "eth1  eth2"
PolicyRouting = "yes"
Unmanaged = "docker* veth?"
RouteTableBase = 2000
`);
    expect(problems).toEqual([]);
    expect(config).toEqual({
      logLevel: 'debug',
      logFormat: 'json',
      refreshSeconds: 5400,
      listenHost: '127.0.0.2',
      listenPort: 6000,
      supplementary: ['eth1', 'eth2'],
      policyRouting: 'yes',
      unmanaged: ['docker*', 'veth?'],
      routeTableBase: 2000,
    });
  });

  it('lets Listen win over Address and Port in any order', () => {
    const { config } = fromToml('[Network]\nListen = "127.0.0.5:7000"\nAddress = "127.0.0.9"\nPort = 8000\n');
    expect([config.listenHost, config.listenPort]).toEqual(['127.0.0.5', 7000]);
  });

  it.each([
    ['[System]\nLogLevel = "loud"', 'System.LogLevel'],
    ['[System]\nLogFormat = "xml"', 'System.LogFormat'],
    ['[System]\nRefreshTimer = "2s"', 'System.RefreshTimer'],
    ['[System]\nRefreshTimer = "soon"', 'System.RefreshTimer'],
    ['[System]\nRefreshTimer = "720h"', 'System.RefreshTimer'],
    ['[Network]\nPort = 70000', 'Network.Port'],
    ['[Network]\nListen = "nowhere"', 'Network.Listen'],
    ['[Network]\nPolicyRouting = "maybe"', 'Network.PolicyRouting'],
    ['[Network]\nRouteTableBase = 254', 'Network.RouteTableBase'],
    ['[Network]\nSupplementary = 3', 'Network.Supplementary'],
    ['[Network]\nUnmanaged = "eth["', 'Network.Unmanaged'],
  ])('names the key and value of %j and keeps the default', (text, key) => {
    const { config, problems } = fromToml(text);
    expect(problems).toHaveLength(1);
    expect(problems[0]!.severity).toBe('error');
    expect(problems[0]!.message).toContain(key);
    expect(problems[0]!.message).toMatch(/got /);
    expect(config).toEqual(DEFAULT_CONFIG);
  });

  it('takes commas between interface names too', () => {
    expect(fromToml('[Network]\nUnmanaged = "eth1, eth2"\n').config.unmanaged).toEqual(['eth1', 'eth2']);
  });

  it.each(['not-an-ip', 'example.com', ''])('refuses Address = %j: the API must bind to an address', (address) => {
    const { config, problems } = fromToml(`[Network]\nAddress = ${JSON.stringify(address)}\n`);
    expect(problems[0]!.message).toMatch(/Network.Address must be an IP address or localhost/);
    expect(config.listenHost).toBe('127.0.0.1');
  });

  it('suggests the right case for a section or key', () => {
    expect(fromToml('[network]\nPort = 1\n[System]\nloglevel = "info"\n').problems.map((p) => p.message)).toEqual([
      'unknown section [network] ignored; did you mean [Network]?',
      'unknown key System.loglevel ignored; did you mean System.LogLevel?',
    ]);
  });

  it('points a key written outside any section to its section', () => {
    expect(fromToml('LogLevel = "debug"\n').problems.map((p) => p.message)).toEqual([
      'key LogLevel is outside any section and ignored; put it under [System]',
    ]);
  });

  it('warns about unknown sections and keys', () => {
    const { problems } = fromToml('[Sytem]\nx = 1\n[Network]\nPorts = 1\n');
    expect(problems.map((p) => [p.severity, p.message])).toEqual([
      ['warning', 'unknown section [Sytem] ignored'],
      ['warning', 'unknown key Network.Ports ignored'],
    ]);
  });

  it('takes log settings from the environment over the file', () => {
    const { config } = fromToml('[System]\nLogLevel = "info"', { CLOUD_NETWORK_LOG_LEVEL: 'Trace', CLOUD_NETWORK_LOG_FORMAT: 'json' });
    expect([config.logLevel, config.logFormat]).toEqual(['trace', 'json']);
  });

  it('gives the line of a TOML syntax error', () => {
    const path = tempFile('[System]\nLogLevel = "info"\nRefreshTimer = \n');
    expect(() => loadConfig(path, true, {})).toThrow(/line 3/);
  });

  it('accepts a missing default file but not a missing explicit one', () => {
    expect(loadConfig('/nonexistent/cloud-network.toml', false, {}).config).toEqual(DEFAULT_CONFIG);
    expect(() => loadConfig('/nonexistent/cloud-network.toml', true, {})).toThrow(ConfigError);
  });

  it('reports a file that cannot be read', () => {
    const directory = mkdtempSync(join(tmpdir(), 'cn-config-'));
    expect(() => loadConfig(directory, true, {})).toThrow(`cannot read config ${directory}: it is a directory`);
  });

  it('parses Go durations', () => {
    expect(parseDuration('300s')).toBe(300);
    expect(parseDuration('5m')).toBe(300);
    expect(parseDuration('1.5h')).toBe(5400);
    expect(parseDuration('1500ms')).toBe(1.5);
    expect(parseDuration('5')).toBeUndefined();
  });

  it('matches interface globs', () => {
    expect(matchesAny('docker0', ['docker*'])).toBe(true);
    expect(matchesAny('eth1', ['eth[12]'])).toBe(true);
    expect(matchesAny('eth10', ['eth?'])).toBe(false);
  });
});
