// /proc readings for the daemon: which process really runs it (the program may re-execute
// itself through setpriv when a cloud-network user exists, SPEC §8), its RSS and CPU time.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

export const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

export interface ProcStat {
  pid: number;
  ppid: number;
  state: string;
  /** utime + stime, ms. */
  cpuMs: number;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

export function procStat(pid: number): ProcStat | undefined {
  const text = read(`/proc/${pid}/stat`);
  if (!text) return undefined;
  // The command name may hold spaces and parentheses: fields start after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return { pid, ppid: Number(fields[1]), state: fields[0] ?? '?', cpuMs: (ticks * 1000) / CLOCK_TICKS };
}

export interface ProcStatus {
  rssKb: number;
  /** Anonymous memory: the program's own (heap, stacks); the rest of VmRSS is file-backed (the node binary). */
  rssAnonKb: number;
  rssFileKb: number;
  hwmKb: number;
  voluntarySwitches: number;
  involuntarySwitches: number;
  threads: number;
}

export function procStatus(pid: number): ProcStatus | undefined {
  const text = read(`/proc/${pid}/status`);
  if (!text) return undefined;
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? NaN);
  return {
    rssKb: field('VmRSS'),
    rssAnonKb: field('RssAnon'),
    rssFileKb: field('RssFile'),
    hwmKb: field('VmHWM'),
    voluntarySwitches: field('voluntary_ctxt_switches'),
    involuntarySwitches: field('nonvoluntary_ctxt_switches'),
    threads: field('Threads'),
  };
}

/** Context switches of all threads of `pid` (a busy poller shows as many wake-ups per second). */
export function contextSwitches(pid: number): number {
  let total = 0;
  let tasks: string[] = [];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return NaN;
  }
  for (const task of tasks) {
    const text = read(`/proc/${pid}/task/${task}/status`) ?? '';
    for (const match of text.matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)/gm)) total += Number(match[1]);
  }
  return total;
}

export function cmdline(pid: number): string[] {
  return (read(`/proc/${pid}/cmdline`) ?? '').split('\0').filter((word) => word !== '');
}

/** `root` and all its descendants, parents before children. */
export function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = procStat(Number(entry));
    if (stat) children.set(stat.ppid, [...(children.get(stat.ppid) ?? []), stat.pid]);
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    out.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return out;
}

/**
 * The process that really runs the program under `root`: the deepest node process whose
 * command line names the cloud-network entry (after a setpriv re-exec, the child).
 */
export function programProcess(root: number, entry: string): number | undefined {
  const candidates = descendants(root).filter((pid) => {
    const argv = cmdline(pid);
    return /(^|\/)node$/.test(argv[0] ?? '') && argv.includes(entry);
  });
  return candidates.at(-1);
}

/** Descendants of `pid` that are `ip` processes (the kernel monitor), with their RSS. */
export function ipChildren(pid: number): { pid: number; rssKb: number; argv: string[] }[] {
  return descendants(pid)
    .slice(1)
    .map((child) => ({ pid: child, argv: cmdline(child), rssKb: procStatus(child)?.rssKb ?? 0 }))
    .filter((child) => /(^|\/)ip$/.test(child.argv[0] ?? ''));
}
