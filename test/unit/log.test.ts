import { afterEach, expect, it, vi } from 'vitest';
import { createLogger, setLogLevel } from '../../src/log.js';

const written: string[] = [];
afterEach(() => {
  vi.restoreAllMocks();
  written.length = 0;
});
const capture = () =>
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    written.push(String(chunk));
    return true;
  });

it('writes text lines to stderr, one per message', () => {
  capture();
  const log = createLogger('info', 'text');
  log.info('applied: address add 10.0.0.6/32 dev eth0 noprefixroute');
  log.warn('metadata interface 0a:00:00:00:00:09 has no network link on this machine; skipped');
  log.debug('not shown at info');
  expect(written).toEqual([
    'info: applied: address add 10.0.0.6/32 dev eth0 noprefixroute\n',
    'warning: metadata interface 0a:00:00:00:00:09 has no network link on this machine; skipped\n',
  ]);
});

it('writes one JSON object per line with LogFormat = "json"', () => {
  capture();
  const log = createLogger('debug', 'json');
  log.error(new Error('cannot run ip: not found in PATH; install iproute2'));
  log.debug('details');
  const lines = written.map((line) => JSON.parse(line) as Record<string, string>);
  expect(lines.map(({ level, msg }) => ({ level, msg }))).toEqual([
    { level: 'error', msg: 'cannot run ip: not found in PATH; install iproute2' },
    { level: 'debug', msg: 'details' },
  ]);
  expect(Date.parse(lines[0]!.time!)).not.toBeNaN();
});

it('changes level on reload', () => {
  capture();
  const log = createLogger('error', 'text');
  log.info('hidden');
  setLogLevel(log, 'trace');
  log.info('shown');
  expect(written).toEqual(['info: shown\n']);
});
