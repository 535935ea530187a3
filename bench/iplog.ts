// Counting `ip` processes: the program runs `ip` from PATH, so a wrapper script named `ip` put
// first in PATH logs every invocation (start, end, exit code, arguments) and runs the real ip.
// Long-running monitors are exec'ed (logged at start only) so that killing the program's child
// really ends the monitor, and `ip netns exec` (how the world starts the program, looked up
// through the same PATH) is exec'ed unlogged so that the program keeps the spawned pid.
// Timestamps come from bash's $EPOCHREALTIME: no extra process.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const REAL_IP = ['/usr/sbin/ip', '/usr/bin/ip', '/sbin/ip', '/bin/ip'].find((path) => existsSync(path)) ?? '/usr/sbin/ip';

export interface IpCall {
  /** Start and end, ms since the epoch (end undefined for exec'ed monitors). */
  start: number;
  end?: number;
  exitCode?: number;
  args: string;
  kind: 'read' | 'write' | 'monitor' | 'other';
}

export interface IpLog {
  /** Directory to put first in PATH. */
  dir: string;
  file: string;
  /** Calls logged after `since` (ms since the epoch). */
  calls(since?: number): IpCall[];
}

/** Creates the wrapper in `parent`/ipwrap; the log is world-writable for a program that dropped root (SPEC §8). */
export function createIpLog(parent: string): IpLog {
  const dir = join(parent, 'ipwrap');
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  const file = join(dir, 'calls.log');
  writeFileSync(file, '');
  chmodSync(file, 0o666);
  const script = `#!/bin/bash
# benchmark wrapper: log this ip invocation, then run the real ip
case "$1 $2" in
  "netns exec") exec ${REAL_IP} "$@" ;;
esac
case " $* " in
  *" monitor "*) printf '%s - - %s\\n' "$EPOCHREALTIME" "$*" >> '${file}'; exec ${REAL_IP} "$@" ;;
esac
s=$EPOCHREALTIME
${REAL_IP} "$@"
rc=$?
printf '%s %s %s %s\\n' "$s" "$EPOCHREALTIME" "$rc" "$*" >> '${file}'
exit $rc
`;
  writeFileSync(join(dir, 'ip'), script, { mode: 0o755 });
  return {
    dir,
    file,
    calls(since = 0) {
      return parseIpLog(readFileSync(file, 'utf8')).filter((call) => call.start >= since);
    },
  };
}

export function classify(args: string): IpCall['kind'] {
  const words = args.split(/\s+/);
  if (words.includes('monitor')) return 'monitor';
  if (words.includes('-force') || /\b(add|del|replace|set|change|flush)\b/.test(args)) return 'write';
  if (words.includes('-j') || /\b(show|list|get)\b/.test(args)) return 'read';
  return 'other';
}

const ms = (text: string): number => Number(text) * 1000;

export function parseIpLog(text: string): IpCall[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [start = '0', end = '-', rc = '-', ...args] = line.split(' ');
      const joined = args.join(' ');
      return {
        start: ms(start),
        ...(end === '-' ? {} : { end: ms(end), exitCode: Number(rc) }),
        args: joined,
        kind: classify(joined),
      };
    });
}

export interface IpCounts {
  reads: number;
  writes: number;
  other: number;
}

export function countCalls(calls: IpCall[]): IpCounts {
  return {
    reads: calls.filter((call) => call.kind === 'read').length,
    writes: calls.filter((call) => call.kind === 'write').length,
    other: calls.filter((call) => call.kind === 'other').length,
  };
}
