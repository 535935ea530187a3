// cnctl against a real daemon in a namespace world, for each provider: what it prints is what
// the daemon read from the mock metadata service, and a stopped daemon is one clear line.
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { loadFixture, REPO_ROOT } from '../support/fixture.js';
import { createWorld, startCloudNetwork, type World } from '../support/world.js';

const CNCTL = join(REPO_ROOT, 'bin/cnctl');
const worlds: World[] = [];
afterEach(async () => {
  for (const world of worlds.splice(0)) await world.destroy();
});

const cnctl = (w: World, args: string[]) => w.exec([CNCTL, ...args], { check: false, env: w.env() });

const CASES = [
  { fixture: 'ec2/three-enis', system: /Instance ID:\s+i-1234567890abcdef0/ },
  { fixture: 'azure/three-nics', system: /VM ID:\s+02aab8a4-74ef-476e-8182-f6d2ba4166a6/ },
  { fixture: 'gcp/two-nics-aliases', system: /Name:\s+instance-2/ },
];

describe('cnctl against a running daemon', () => {
  test.each(CASES)('$fixture', async ({ fixture, system }) => {
    const w = await createWorld({ fixture: loadFixture(fixture), dhcp: true });
    worlds.push(w);
    const daemon = startCloudNetwork(w);
    await daemon.waitForOutput(/API on http:\/\/127\.0\.0\.1:5209/);
    await expect.poll(async () => (await cnctl(w, ['plan'])).stdout, { timeout: 15_000, interval: 100 }).toMatch(/nothing to change/);

    const status = await cnctl(w, ['status', 'system']);
    expect(status.exitCode, status.stderr).toBe(0);
    expect(status.stdout).toMatch(system);

    const network = await cnctl(w, ['status', 'network']);
    expect(network.exitCode, network.stderr).toBe(0);
    for (const nic of w.nics) {
      expect(network.stdout).toMatch(new RegExp(`Name:\\s+${nic.name}\\n`));
      expect(network.stdout).toContain(nic.mac);
      expect(network.stdout).toMatch(new RegExp(`Route table:\\s+${10000 + nic.key}$`, 'm'));
    }

    const json = await cnctl(w, ['status', '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ provider: w.provider, interfaces: w.nics.map((nic) => expect.objectContaining({ mac: nic.mac })) });

    expect(await daemon.stop('SIGTERM')).toBe(0);
    const down = await cnctl(w, ['status']);
    expect(down.exitCode).toBe(1);
    expect(down.stderr.trim()).toBe(
      'error: cannot reach cloud-network at 127.0.0.1:5209: connection refused; is the service running? systemctl status cloud-network',
    );
  });
});
