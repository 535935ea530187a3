// One cloud-network at a time per state directory: two reconcilers racing on one kernel
// would each see the other's half-applied state. The lock file holds the owner's pid.
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export class LockedError extends Error {}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the lock or throws LockedError naming the running instance. Returns the release function. */
export function acquireLock(stateDir: string): () => void {
  const path = join(stateDir, 'lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o640);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return () => {
        try {
          if (readFileSync(path, 'utf8').trim() === String(process.pid)) unlinkSync(path);
        } catch {
          // already gone
        }
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = Number(readFileSync(path, 'utf8').trim());
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && alive(owner)) {
        throw new LockedError(`another cloud-network (pid ${owner}) is already running with state directory ${stateDir}; not starting a second one`);
      }
      unlinkSync(path); // left by a process that died (kill -9, power loss): take it over
    }
  }
  throw new LockedError(`cannot take the lock ${path}`);
}
