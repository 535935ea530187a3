// `sudo make demo`: the main job on a recorded EC2 instance (three ENIs), in a throwaway
// network namespace with a mock metadata service. Shows the namespace before and after
// `cloud-network --once`, then deletes it. Nothing on the host is changed.
import { loadFixture } from '../test/support/fixture.js';
import { createWorld, describeRun, REMOTE, runCloudNetwork, type World } from '../test/support/world.js';

const FIXTURE = 'ec2/three-enis';

async function show(world: World, title: string): Promise<void> {
  const section = async (heading: string, args: string[]) => {
    const { stdout } = await world.ip(args);
    process.stdout.write(`  ${heading}\n${stdout.trimEnd().replace(/^/gm, '    ')}\n`);
  };
  process.stdout.write(`\n=== ${title} (namespace ${world.name}) ===\n`);
  await section('addresses (ip -4 -br address)', ['-4', '-br', 'address']);
  await section('rules (ip rule)', ['rule']);
  await section('routes of cloud-network (ip route show table all proto 149)', ['route', 'show', 'table', 'all', 'proto', '149']);
  process.stdout.write(`  where a reply to ${REMOTE} leaves, per source address\n`);
  for (const nic of world.nics) {
    for (const address of nic.addresses) {
      const route = await world.routeGet(REMOTE, address).catch((error: Error) => ({ dev: `(${error.message.split('\n').pop()})`, gateway: '' }));
      process.stdout.write(`    from ${address.padEnd(15)} -> dev ${route.dev}${route.gateway ? ` via ${route.gateway}` : ''}\n`);
    }
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the demo builds a network namespace: run it as root (sudo make demo), or use `make dry-run`');
  const world = await createWorld({ fixture: loadFixture(FIXTURE), dhcp: true });
  try {
    process.stdout.write(`Recorded metadata: test/fixtures/${FIXTURE} (3 ENIs, 7 private IPv4 addresses), served by a mock IMDS at ${world.endpoint} inside the namespace.\n`);
    await show(world, 'before: only the DHCP address on eth0');
    const dryRun = await runCloudNetwork(world, ['--dry-run']);
    process.stdout.write(`\n=== cloud-network --dry-run ===\n${dryRun.stdout}`);
    const run = await runCloudNetwork(world, ['--once']);
    process.stdout.write(`\n=== cloud-network --once: exit ${run.exitCode} in ${run.durationMs} ms ===\n`);
    if (run.exitCode !== 0) throw new Error(describeRun(run));
    await show(world, 'after');
    const again = await runCloudNetwork(world, ['--dry-run']);
    process.stdout.write(`\n=== a second dry run: ${again.stdout === '' ? 'nothing left to change' : `\n${again.stdout}`} ===\n`);
  } finally {
    await world.destroy();
    process.stdout.write(`\nnamespace ${world.name} deleted\n`);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
