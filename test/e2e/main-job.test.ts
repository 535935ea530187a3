// Issue 2 end to end: `cloud-network --once` against a mock IMDS in a network namespace that
// looks like the VM of each provider's multi-NIC fixture. Every test builds its own world, so
// tests run concurrently; none sleeps (the monitor proves "no write" with marker events).
import { describe, test, type ExpectStatic } from 'vitest';
import { checkConfigured, checkForeign, snapshotDelta } from '../support/assertions.js';
import { withoutSecondary } from '../support/expected.js';
import { loadFixture, withoutLocalRoute, type Fixture, type Provider } from '../support/fixture.js';
import type { Fault } from '../support/mock-imds.js';
import { createWorld, describeRun, runCloudNetwork, type World, type WorldNic } from '../support/world.js';

const BASE = 10000;

interface Case {
  provider: Provider;
  fixture: string;
  /** Metadata faults for the "bad answer" tests apply to these paths (EC2: not the token). */
  dataPaths: Pick<Fault, 'pathRegex'>;
  /** A metadata change that drops one owned item, and what must disappear with it. */
  removal: (f: Fixture, nics: WorldNic[]) => { fixture: Fixture; removed: string[] };
}

/** Drops the second address of NIC `index`: the address and its two rules must go. */
const dropSecondary = (index: number) => withoutSecondary(index, (addresses) => addresses[1]!);

const CASES: Case[] = [
  { provider: 'ec2', fixture: 'ec2/three-enis', dataPaths: { pathRegex: '^/latest/(meta-data|dynamic)/' }, removal: dropSecondary(1) },
  { provider: 'azure', fixture: 'azure/three-nics', dataPaths: {}, removal: dropSecondary(0) },
  {
    provider: 'gcp',
    fixture: 'gcp/two-nics-aliases',
    dataPaths: {},
    // GCP has no secondary addresses: the owned item that can leave is an alias range.
    removal: (f, nics) => {
      const nic = nics[0]!;
      const alias = nic.localRoutes.find((c) => c.endsWith('/32'))!;
      return {
        fixture: withoutLocalRoute(f, nic.mac, alias),
        removed: [`route table local local ${alias.replace(/\/32$/, '')} dev ${nic.name} proto 149`],
      };
    },
  },
];

/** A world like the VM before cloud-network: DHCP on eth0, other links down, foreign state. */
async function vm(c: Case): Promise<World> {
  return createWorld({ fixture: loadFixture(c.fixture), dhcp: true, foreign: true });
}

/** Runs --once and insists on success, with the program's output in the failure message. */
async function once(world: World, expect: ExpectStatic): Promise<void> {
  const r = await runCloudNetwork(world, ['--once']);
  expect(r.exitCode, describeRun(r)).toBe(0);
}

/** World after a successful first run. */
async function converged(c: Case, expect: ExpectStatic): Promise<World> {
  const world = await vm(c);
  try {
    await once(world, expect);
    return world;
  } catch (e) {
    await world.destroy();
    throw e;
  }
}

/** With `fault` active, --once must exit 1 and leave the kernel exactly as it was. */
async function failsWithoutChange(c: Case, fault: Fault, expect: ExpectStatic): Promise<void> {
  const world = await converged(c, expect);
  try {
    const before = await world.snapshot();
    await world.mock.addFault(fault);
    const mon = await world.monitor();
    const r = await runCloudNetwork(world, ['--once']);
    const writes = await mon.stop();
    expect(r.exitCode, describeRun(r)).toBe(1);
    expect(`${r.stdout}${r.stderr}`.trim(), 'a failure says what failed').not.toBe('');
    expect(writes, 'kernel events during the failed run').toEqual([]);
    expect(await world.snapshot()).toEqual(before);
    // The fault was really hit (not a run that failed for an unrelated reason before asking).
    expect((await world.mock.log()).some((e) => e.fault === fault.kind)).toBe(true);
  } finally {
    await world.destroy();
  }
}

for (const c of CASES) {
  describe.concurrent(`${c.provider} (${c.fixture}): cloud-network --once`, () => {
    test('configures every address, SPEC §5 rules and routes, keeps foreign state', { timeout: 60_000 }, async ({ expect }) => {
      const world = await vm(c);
      try {
        expect(await checkConfigured(world), 'the world starts unconfigured').not.toEqual([]);
        await once(world, expect);
        expect(await checkConfigured(world, { base: BASE })).toEqual([]);
        // The client spoke the protocol: no request was refused for auth or headers.
        const refused = (await world.mock.log()).filter((e) => e.status !== null && [400, 401, 403, 405].includes(e.status));
        expect(refused).toEqual([]);
      } finally {
        await world.destroy();
      }
    });

    test('a second run on unchanged metadata makes no kernel write', { timeout: 60_000 }, async ({ expect }) => {
      const world = await converged(c, expect);
      try {
        const before = await world.snapshot();
        const mon = await world.monitor();
        await once(world, expect);
        expect(await mon.stop()).toEqual([]);
        expect(await world.snapshot()).toEqual(before);
      } finally {
        await world.destroy();
      }
    });

    test('an owned item that left the metadata is removed, and nothing else', { timeout: 60_000 }, async ({ expect }) => {
      const world = await converged(c, expect);
      try {
        const { fixture, removed } = c.removal(await world.mock.fixture(), world.nics);
        const before = await world.snapshot();
        await world.mock.setFixture(fixture);
        await once(world, expect);
        const after = await world.snapshot();
        expect(snapshotDelta(before, after)).toEqual({ added: [], removed });
        expect(checkForeign(world, after)).toEqual([]);
      } finally {
        await world.destroy();
      }
    });

    test('IMDS answering 500: exit 1, nothing removed', { timeout: 90_000 }, async ({ expect }) => {
      await failsWithoutChange(c, { kind: 'status', status: 500, ...c.dataPaths }, expect);
    });

    test('IMDS answering an HTML page: exit 1, nothing removed', { timeout: 90_000 }, async ({ expect }) => {
      await failsWithoutChange(c, { kind: 'html', ...c.dataPaths }, expect);
    });

    test('IMDS answering an empty body: exit 1, nothing removed', { timeout: 90_000 }, async ({ expect }) => {
      await failsWithoutChange(c, { kind: 'empty', ...c.dataPaths }, expect);
    });

    // The client's 5 s total timeout with retries makes this one cost ~15 s: its own test, so
    // the concurrent runner overlaps it with the others.
    test('IMDS that never answers: exit 1 after the timeouts, nothing removed', { timeout: 120_000 }, async ({ expect }) => {
      await failsWithoutChange(c, { kind: 'hang' }, expect);
    });
  });
}
