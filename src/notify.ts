// systemd readiness and watchdog (Type=notify). Node cannot send unix datagrams itself, so
// messages go through systemd-notify; the unit sets NotifyAccess=all for that reason.
import { execa } from 'execa';
import type { Logger } from './log.js';

export class SystemdNotifier {
  private watchdogTimer?: NodeJS.Timeout;
  private readonly enabled = Boolean(process.env.NOTIFY_SOCKET);

  constructor(private readonly log: Logger) {}

  async send(...assignments: string[]): Promise<void> {
    if (!this.enabled) return;
    const result = await execa('systemd-notify', [`--pid=${process.pid}`, ...assignments], { reject: false });
    if (result.failed) this.log.debug(`systemd-notify ${assignments.join(' ')} failed: ${result.shortMessage}`);
  }

  /** Pings the watchdog at half its interval while `healthy()` says so. */
  startWatchdog(healthy: () => boolean): void {
    const usec = Number(process.env.WATCHDOG_USEC);
    if (!this.enabled || !Number.isFinite(usec) || usec <= 0) return;
    this.watchdogTimer = setInterval(() => {
      if (healthy()) void this.send('WATCHDOG=1');
    }, usec / 2000);
    this.watchdogTimer.unref();
  }

  stop(): void {
    clearInterval(this.watchdogTimer);
  }
}
