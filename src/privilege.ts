// Privilege model (SPEC §8). Started as root by hand, the daemon prepares its state
// directory and runs itself again through setpriv as user cloud-network, holding only
// CAP_NET_ADMIN (inheritable and ambient, so every `ip` child gets it too).
import { lchownSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import type { Logger } from './log.js';

export const SERVICE_USER = 'cloud-network';
/** Set in the re-executed child, so that it does not try again. */
const DROPPED_MARK = 'CLOUD_NETWORK_PRIVILEGES_DROPPED';

export interface ServiceUser {
  uid: number;
  gid: number;
}

export function lookupUser(name: string, passwd = '/etc/passwd'): ServiceUser | undefined {
  const line = readFileSync(passwd, 'utf8')
    .split('\n')
    .find((entry) => entry.split(':')[0] === name);
  if (!line) return undefined;
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/** True when this process should hand over to an unprivileged copy of itself. */
export function shouldDropPrivileges(): boolean {
  return process.getuid?.() === 0 && !process.env[DROPPED_MARK];
}

/**
 * Hands the state directory and what an earlier root run left in it to the service user.
 * lchown and no descent into symlinks: a link planted in the directory must not make root
 * give away the file it points to.
 */
function chownTree(path: string, user: ServiceUser): void {
  // Checked right before reading it: a directory swapped for a link since its parent was listed is skipped.
  if (!lstatSync(path).isDirectory()) return;
  lchownSync(path, user.uid, user.gid);
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    if (entry.isDirectory()) chownTree(join(path, entry.name), user);
    else if (entry.isFile()) lchownSync(join(path, entry.name), user.uid, user.gid);
  }
}

/**
 * Runs this same command as the service user and returns its exit code, forwarding signals.
 * Returns undefined when the user does not exist: the caller keeps running as root.
 */
export async function runUnprivileged(stateDir: string, log: Logger): Promise<number | undefined> {
  const user = lookupUser(SERVICE_USER);
  if (!user) {
    log.warn(`user ${SERVICE_USER} does not exist; running as root (the packages create it; by hand: useradd --system --no-create-home --shell /usr/sbin/nologin ${SERVICE_USER})`);
    return undefined;
  }
  if (!lstatSync(stateDir).isDirectory()) throw new Error(`state directory ${stateDir} is not a directory (a symbolic link?); refusing to hand it over`);
  chownTree(stateDir, user);
  const child = execa(
    'setpriv',
    [
      `--reuid=${SERVICE_USER}`,
      `--regid=${SERVICE_USER}`,
      '--init-groups',
      '--inh-caps=-all,+net_admin',
      '--ambient-caps=-all,+net_admin',
      '--bounding-set=-all,+net_admin',
      // If this root parent dies, even by SIGKILL, the daemon stops cleanly instead of living on orphaned.
      '--pdeathsig=SIGTERM',
      process.execPath,
      ...process.execArgv,
      ...process.argv.slice(1),
    ],
    { stdio: 'inherit', reject: false, env: { [DROPPED_MARK]: '1' } },
  );
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => child.kill(signal));
  const result = await child;
  if (result.failed && result.exitCode === undefined && !result.signal) {
    throw new Error(`cannot run setpriv to drop privileges: ${result.shortMessage}`);
  }
  return result.exitCode ?? 1;
}
