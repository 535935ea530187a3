// SPEC §8 end to end. Runs in the serial step (test/serial): it creates the machine-wide user
// cloud-network, which would make every other test's root process drop its privileges too.
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { checkConfigured } from '../support/assertions.js';
import { loadFixture } from '../support/fixture.js';
import { createWorld, startCloudNetwork, type World } from '../support/world.js';

const worlds: World[] = [];
afterEach(async () => {
  for (const world of worlds.splice(0)) await world.destroy();
});

test('as root with a cloud-network user, runs as that user with CAP_NET_ADMIN only and still configures', async () => {
  const created = addServiceUser();
  try {
    const w = await createWorld({ fixture: loadFixture('ec2/three-enis'), dhcp: true, foreign: true });
    worlds.push(w);
    // A link planted in the state directory must not make root hand over what it points to.
    const victim = join(w.dir, 'victim');
    writeFileSync(victim, 'root only\n', { mode: 0o600 });
    symlinkSync(victim, join(w.stateDir, 'planted'));
    const daemon = startCloudNetwork(w);
    await expect.poll(() => checkConfigured(w), { timeout: 15_000, interval: 100 }).toEqual([]);
    // The lock file holds the pid of the process that really runs the daemon (after setpriv).
    const pid = Number(readFileSync(join(w.stateDir, 'lock'), 'utf8'));
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name: string) => new RegExp(`^${name}:\\s+(.*)$`, 'm').exec(status)?.[1];
    const uid = Number(execFileSync('id', ['-u', 'cloud-network'], { encoding: 'utf8' }));
    expect(field('Uid')?.split(/\s+/).map(Number)).toEqual([uid, uid, uid, uid]);
    const NET_ADMIN = (1n << 12n).toString(16).padStart(16, '0');
    expect({ eff: field('CapEff'), amb: field('CapAmb'), bnd: field('CapBnd') }).toEqual({ eff: NET_ADMIN, amb: NET_ADMIN, bnd: NET_ADMIN });
    expect(statSync(victim).uid).toBe(0);
    expect(statSync(w.stateDir).uid).toBe(uid);
    expect(await daemon.stop('SIGTERM')).toBe(0);
  } finally {
    if (created) execFileSync('userdel', ['cloud-network']);
  }
});

test('without a cloud-network user, says so in one warning and configures as root', async () => {
  const w = await createWorld({ fixture: loadFixture('ec2/three-enis'), dhcp: true });
  worlds.push(w);
  const daemon = startCloudNetwork(w);
  await expect.poll(() => checkConfigured(w), { timeout: 15_000, interval: 100 }).toEqual([]);
  expect(daemon.output().match(/^warning: user cloud-network does not exist; running as root/gm)).toHaveLength(1);
  expect(await daemon.stop('SIGTERM')).toBe(0);
});

/** Creates the service user unless it exists (a package may have made it); true when created here. */
function addServiceUser(): boolean {
  try {
    execFileSync('id', ['cloud-network'], { stdio: 'ignore' });
    return false;
  } catch {
    execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', 'cloud-network']);
    return true;
  }
}
