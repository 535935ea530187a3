// Kernel events from one long-lived `ip -o monitor label ...` child. Each line becomes a
// small typed event; the daemon decides what deserves a reconcile.
import { execa, type ResultPromise } from 'execa';
import { createInterface } from 'node:readline';
import { normalizeMac } from './net.js';

export type KernelEvent =
  | { kind: 'link'; deleted: boolean; name: string; mac?: string; hasMaster: boolean }
  | { kind: 'address'; deleted: boolean; name: string }
  | { kind: 'rule' | 'route'; deleted: boolean; ours: boolean };

const OURS = /\bproto (149|cloud-network)\b/;

export function parseMonitorLine(line: string): KernelEvent | undefined {
  const label = /^\[(LINK|ADDR|RULE|ROUTE)\](Deleted )?(.*)$/.exec(line);
  if (!label) return undefined;
  const [, kind, deletedWord, rest = ''] = label;
  const deleted = deletedWord !== undefined;
  switch (kind) {
    case 'LINK': {
      const link = /^\d+: ([^:@\s]+)(?:@\S+)?: <[^>]*>(.*)$/.exec(rest);
      if (!link) return undefined;
      const mac = /link\/ether ([0-9a-fA-F:]{17})/.exec(link[2]!)?.[1];
      return { kind: 'link', deleted, name: link[1]!, mac: mac && normalizeMac(mac), hasMaster: /\bmaster \S+/.test(link[2]!) };
    }
    case 'ADDR': {
      const address = /^\d+: (\S+)\s+inet /.exec(rest);
      return address ? { kind: 'address', deleted, name: address[1]! } : undefined;
    }
    default:
      return { kind: kind === 'RULE' ? 'rule' : 'route', deleted, ours: OURS.test(rest) };
  }
}

const RESTART_MIN_MS = 500;
const RESTART_MAX_MS = 30_000;

/** Runs the monitor until stop() is called, restarting it with backoff if it dies. */
export class KernelMonitor {
  private child?: ResultPromise;
  private stopped = false;
  private restartDelay = RESTART_MIN_MS;
  private restartTimer?: NodeJS.Timeout;

  constructor(
    private readonly onEvent: (event: KernelEvent) => void,
    private readonly onProblem: (message: string) => void,
  ) {}

  start(): void {
    // setpriv --pdeathsig: the monitor dies with the daemon even when the daemon is SIGKILLed.
    const child = execa('setpriv', ['--pdeathsig=SIGTERM', '--', 'ip', '-o', 'monitor', 'label', 'link', 'address', 'rule', 'route'], {
      stdin: 'ignore',
      stderr: 'ignore',
      buffer: false,
      reject: false,
    });
    this.child = child;
    const startedAt = Date.now();
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const event = parseMonitorLine(line);
      if (event) this.onEvent(event);
    });
    child.on('error', (error) => this.onProblem(`ip monitor cannot run: ${error.message}`));
    child.on('exit', (code, signal) => {
      if (this.stopped) return;
      // A monitor that ran for a while earns a quick restart; one that keeps dying backs off.
      this.restartDelay = Date.now() - startedAt > RESTART_MAX_MS ? RESTART_MIN_MS : Math.min(this.restartDelay * 2, RESTART_MAX_MS);
      // Said when the restart happens: a stop signal sent to the whole process group reaches the
      // monitor first, and the daemon's own stop then cancels the restart without a false alarm.
      const delay = this.restartDelay;
      this.restartTimer = setTimeout(() => {
        this.onProblem(`ip monitor exited (${signal ?? `code ${code}`}); restarted after ${delay} ms`);
        this.start();
      }, delay);
    });
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    this.child?.kill();
  }
}
