// Issue 6, metadata service faults that spoil the whole answer: the real binary in a namespace
// world, converged first, then one fault. Each case proves three things: the failed run writes
// nothing to the kernel (not even the repair of a drift it could see), it says what failed in
// one `error:` line with exit code 1 (SPEC §2), and the first run after the fault converges.
// The 5 s client timeout makes the two "never finishes" cases cost ~16 s each: they run
// concurrently with the rest of this file.
import { describe, test, type ExpectStatic } from 'vitest';
import { checkConfigured } from '../support/assertions.js';
import { cloneFixture, editJson, loadFixture, PATHS, type Fixture, type Provider } from '../support/fixture.js';
import type { Fault } from '../support/mock-imds.js';
import { createWorld, describeRun, runCloudNetwork, startCloudNetwork, type EnvOverrides, type RunResult, type World } from '../support/world.js';

const FIXTURES: Record<Provider, string> = { ec2: 'ec2/three-enis', azure: 'azure/three-nics', gcp: 'gcp/two-nics-aliases' };
const EC2_LISTING = PATHS.ec2Macs;
/** The global rule (RouteTableBase + 9999): deleting it is a drift only a working run repairs. */
const GLOBAL_RULE_PRIORITY = '19999';

// ---------------------------------------------------------------------------------------------
// Local helpers

const nonEmpty = (text: string): string[] => text.split('\n').filter((line) => line.trim() !== '');
/** The program's `error:` lines. */
const errorLines = (text: string): string[] => nonEmpty(text).filter((line) => line.startsWith('error:'));
/** Its `warning:` lines, without the test machine's "no cloud-network user, running as root". */
const warningLines = (text: string): string[] =>
  nonEmpty(text).filter((line) => line.startsWith('warning:') && !/user cloud-network does not exist/.test(line));

/** Exactly one error line, matching `message`, and no stack trace or other noise. */
function expectOneErrorLine(expect: ExpectStatic, r: RunResult, message: RegExp): void {
  expect(errorLines(r.stderr), describeRun(r)).toEqual([expect.stringMatching(message)]);
  expect(nonEmpty(r.stderr).filter((line) => !/^(error|warning|info|debug):/.test(line)), describeRun(r)).toEqual([]);
  expect(r.stdout, describeRun(r)).toBe('');
}

async function vm(provider: Provider): Promise<World> {
  return createWorld({ fixture: loadFixture(FIXTURES[provider]), dhcp: true, foreign: true });
}

async function runOk(world: World, expect: ExpectStatic, env: EnvOverrides = {}): Promise<RunResult> {
  const r = await runCloudNetwork(world, ['--once'], env);
  expect(r.exitCode, describeRun(r)).toBe(0);
  return r;
}

interface FailureCase {
  provider: Provider;
  /** Starts the fault; may return env overrides for the failing run (e.g. another endpoint). */
  hostile(world: World): Promise<EnvOverrides | void>;
  /** The one error line. */
  message: RegExp;
  /** Ends the fault (default: clear the mock's faults; a fault with a count may have ended by itself). */
  heal?(world: World): Promise<void>;
  timeoutMs?: number;
}

/**
 * Converged world, drift (the global rule deleted), fault: --once exits 1 with one line and
 * writes nothing; fault gone: --once exits 0 and the kernel is exactly as converged again.
 */
async function failsThenRecovers(expect: ExpectStatic, c: FailureCase): Promise<void> {
  const world = await vm(c.provider);
  try {
    await runOk(world, expect);
    const converged = await world.snapshot();
    await world.ip(['rule', 'del', 'priority', GLOBAL_RULE_PRIORITY]);
    const drifted = await world.snapshot();
    const env = (await c.hostile(world)) ?? {};
    const mon = await world.monitor();
    const r = await runCloudNetwork(world, ['--once'], env);
    const writes = await mon.stop();
    expect(r.exitCode, describeRun(r)).toBe(1);
    expectOneErrorLine(expect, r, c.message);
    expect(writes, 'kernel events during the failed run').toEqual([]);
    expect(await world.snapshot()).toEqual(drifted);

    await (c.heal ? c.heal(world) : world.mock.clearFaults());
    await runOk(world, expect);
    expect(await world.snapshot()).toEqual(converged);
    expect(await checkConfigured(world)).toEqual([]);
  } finally {
    await world.destroy();
  }
}

/**
 * A server in the VM namespace that accepts requests and then sends its header lines one at a
 * time, forever: the headers never finish. Returns its endpoint.
 */
async function startSlowHeaderServer(world: World): Promise<string> {
  const script = `
    const net = require('node:net');
    const server = net.createServer((socket) => {
      socket.on('error', () => {});
      socket.once('data', () => {
        socket.write('HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\n');
        const timer = setInterval(() => socket.write('X-Still-Thinking: yes\\r\\n'), 400);
        socket.on('close', () => clearInterval(timer));
      });
    });
    server.listen(0, '127.0.0.1', () => console.log('PORT ' + server.address().port));
  `;
  const child = world.spawn(['node', '-e', script], world.env()); // killed by world.destroy()
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const port = /PORT (\d+)/.exec(out)?.[1];
      if (port) resolve(`http://127.0.0.1:${port}`);
    });
    child.once('exit', (code) => reject(new Error(`slow header server exited (${code}): ${out}`)));
  });
}

const statusBurst = (statuses: number[], match: Partial<Fault> = {}): ((world: World) => Promise<void>) =>
  async (world) => {
    for (const status of statuses) await world.mock.addFault({ kind: 'status', status, count: 1, ...match } as Fault);
  };

const withoutNetwork = (f: Fixture): Fixture =>
  f.provider === 'azure'
    ? editJson(cloneFixture(f), PATHS.azureInstance, (doc: Record<string, unknown>) => {
        delete doc.network;
      })
    : editJson(cloneFixture(f), PATHS.gcpRoot, (doc: { instance: Record<string, unknown> }) => {
        delete doc.instance.networkInterfaces;
      });

// ---------------------------------------------------------------------------------------------

describe.concurrent('hostile IMDS: the whole answer is unusable (--once)', () => {
  test('IMDS connection refused: exit 1, one line, nothing changed, next run converges', async ({ expect }) => {
    await failsThenRecovers(expect, {
      provider: 'ec2',
      // Port 1 on the namespace's loopback: nothing listens there.
      hostile: async () => ({ CLOUD_NETWORK_ENDPOINT: 'http://127.0.0.1:1' }),
      message: /^error: metadata request PUT http:\/\/127\.0\.0\.1:1\/latest\/api\/token failed: connection refused \(after 3 attempts\)$/,
    });
  });

  test('IMDS headers that never finish: exit 1 after the timeouts, one line, nothing changed, next run converges', { timeout: 90_000 }, async ({ expect }) => {
    await failsThenRecovers(expect, {
      provider: 'azure',
      hostile: async (world) => ({ CLOUD_NETWORK_ENDPOINT: await startSlowHeaderServer(world) }),
      message: /^error: metadata request GET http:\/\/127\.0\.0\.1:\d+\/metadata\/instance\S* failed: no complete answer within 5 s \(after 3 attempts\)$/,
    });
  });

  test('IMDS body trickling slower than the total timeout: exit 1, one line, nothing changed, next run converges', { timeout: 90_000 }, async ({ expect }) => {
    await failsThenRecovers(expect, {
      provider: 'gcp',
      hostile: async (world) => void (await world.mock.addFault({ kind: 'slow', ms: 60_000 })),
      message: /^error: metadata request GET http:\/\/127\.0\.0\.1:\d+\/computeMetadata\/v1\/\?recursive=true failed: no complete answer within 5 s \(after 3 attempts\)$/,
    });
  });

  for (const provider of ['ec2', 'azure', 'gcp'] as const) {
    test(`IMDS 500, 503 and 429 bursts shorter than the retries (${provider}): absorbed, exit 0, converged`, async ({ expect }) => {
      const world = await vm(provider);
      try {
        // First run from the unconfigured VM: 500 then 503, the third attempt answers.
        await statusBurst([500, 503])(world);
        const first = await runOk(world, expect);
        expect(errorLines(first.stderr), describeRun(first)).toEqual([]);
        expect(await checkConfigured(world)).toEqual([]);
        // Then, after a drift, two 429s on a data path (EC2: the MAC listing, not the token).
        await world.ip(['rule', 'del', 'priority', GLOBAL_RULE_PRIORITY]);
        await statusBurst([429, 429], provider === 'ec2' ? { path: EC2_LISTING } : {})(world);
        const second = await runOk(world, expect);
        expect(errorLines(second.stderr), describeRun(second)).toEqual([]);
        expect(await checkConfigured(world)).toEqual([]);
        const hits = (await world.mock.log()).filter((e) => e.fault === 'status').map((e) => e.status);
        expect(hits).toEqual([500, 503, 429, 429]);
      } finally {
        await world.destroy();
      }
    });
  }

  test('IMDS 503 burst longer than the retries (ec2 token): exit 1, one line, nothing changed, recovers when the burst ends', async ({ expect }) => {
    await failsThenRecovers(expect, {
      provider: 'ec2',
      hostile: statusBurst([503, 503, 503], { path: '/latest/api/token' }),
      message: /^error: metadata request PUT http:\/\/127\.0\.0\.1:\d+\/latest\/api\/token failed: HTTP 503 \(after 3 attempts\)$/,
      heal: async () => undefined, // the burst is used up
    });
  });

  test('IMDS 429 burst longer than the retries (gcp): exit 1, one line, nothing changed, recovers when the burst ends', async ({ expect }) => {
    await failsThenRecovers(expect, {
      provider: 'gcp',
      hostile: statusBurst([429, 429, 429]),
      message: /^error: metadata request GET \S+ failed: HTTP 429 \(after 3 attempts\)$/,
      heal: async () => undefined,
    });
  });

  test('Azure IMDS 410 for longer than the retries: exit 1, one line, nothing changed, recovers when the 410s end', async ({ expect }) => {
    await failsThenRecovers(expect, {
      provider: 'azure',
      hostile: statusBurst([410, 410, 410]),
      message: /^error: metadata request GET \S+\/metadata\/instance\S* failed: HTTP 410 \(after 3 attempts\)$/,
      heal: async () => undefined,
    });
  });

  test('EC2 token endpoint that always answers 401: exit 1, one line, nothing changed, next run converges', async ({ expect }) => {
    await failsThenRecovers(expect, {
      provider: 'ec2',
      hostile: async (world) => void (await world.mock.addFault({ kind: 'status', status: 401, path: '/latest/api/token', method: 'PUT' })),
      message: /^error: EC2 metadata token request answered HTTP 401 without a usable token$/,
    });
  });

  test('EC2 token endpoint answering an HTML page: exit 1, one line, nothing changed, next run converges', async ({ expect }) => {
    await failsThenRecovers(expect, {
      provider: 'ec2',
      hostile: async (world) => void (await world.mock.addFault({ kind: 'html', path: '/latest/api/token' })),
      message: /^error: EC2 metadata token request answered HTTP 200 without a usable token$/,
    });
  });

  test('EC2 MAC listing with an empty body: exit 1, one line, nothing changed, next run converges', async ({ expect }) => {
    await failsThenRecovers(expect, {
      provider: 'ec2',
      hostile: async (world) => void (await world.mock.addFault({ kind: 'empty', path: EC2_LISTING })),
      message: /^error: EC2 metadata lists no network interface$/,
    });
  });

  test('EC2 every per-MAC key failing: exit 1, one line, nothing changed, next run converges', async ({ expect }) => {
    await failsThenRecovers(expect, {
      provider: 'ec2',
      hostile: async (world) => void (await world.mock.addFault({ kind: 'status', status: 500, pathRegex: '^/latest/meta-data/network/interfaces/macs/[^/]+/' })),
      message: /^error: EC2 metadata has no usable network interface: .*HTTP 500/,
    });
  });

  test('Azure truncated JSON (complete response, half the document): exit 1, one line, nothing changed, next run converges', async ({ expect }) => {
    await failsThenRecovers(expect, {
      provider: 'azure',
      hostile: async (world) => void (await world.mock.addFault({ kind: 'truncate' })),
      message: /^error: Azure metadata document is a body that is not complete JSON$/,
    });
  });

  test('GCP truncated JSON (connection reset mid-body): exit 1, one line, nothing changed, next run converges', async ({ expect }) => {
    await failsThenRecovers(expect, {
      provider: 'gcp',
      hostile: async (world) => void (await world.mock.addFault({ kind: 'truncate', abort: true })),
      message: /^error: metadata request GET \S+ failed: answer cut off \(after 3 attempts\)$/,
    });
  });

  test('EC2 50 MB MAC listing (Content-Length announced): exit 1, one line, nothing changed, next run converges', async ({ expect }) => {
    await failsThenRecovers(expect, {
      provider: 'ec2',
      hostile: async (world) => void (await world.mock.addFault({ kind: 'huge', megabytes: 50, contentLength: true, path: EC2_LISTING })),
      message: /^error: metadata request GET \S+\/network\/interfaces\/macs\/ failed: answer larger than 4 MiB \(after 3 attempts\)$/,
    });
  });

  test('GCP 50 MB document (chunked): exit 1, one line, nothing changed, next run converges', async ({ expect }) => {
    await failsThenRecovers(expect, {
      provider: 'gcp',
      hostile: async (world) => void (await world.mock.addFault({ kind: 'huge', megabytes: 50 })),
      message: /^error: metadata request GET \S+ failed: answer larger than 4 MiB \(after 3 attempts\)$/,
    });
  });

  for (const provider of ['azure', 'gcp'] as const) {
    test(`${provider === 'azure' ? 'Azure' : 'GCP'} document without network: exit 1, one line, nothing changed, next run converges`, async ({ expect }) => {
      const original = loadFixture(FIXTURES[provider]);
      await failsThenRecovers(expect, {
        provider,
        hostile: async (world) => world.mock.setFixture(withoutNetwork(original)),
        message:
          provider === 'azure'
            ? /^error: Azure metadata document has no network\.interface list$/
            : /^error: GCP metadata document has no instance\.networkInterfaces list$/,
        heal: async (world) => world.mock.setFixture(original),
      });
    });
  }
});

describe('hostile IMDS: an outage while the daemon runs', () => {
  test('IMDS outage under the daemon: configuration kept, drift repaired from the last good metadata, one line per outage, recovers', { timeout: 60_000 }, async ({ expect }) => {
    const world = await vm('ec2');
    try {
      const daemon = startCloudNetwork(world);
      await expect.poll(() => checkConfigured(world), { timeout: 20_000, interval: 200 }).toEqual([]);
      const converged = await world.snapshot();
      const mark = daemon.output().length;

      await world.mock.addFault({ kind: 'status', status: 503 });
      daemon.child.kill('SIGHUP'); // asks for a metadata refresh now, instead of in RefreshTimer
      await daemon.waitForOutput(/error: metadata request \S+ \S+ failed: HTTP 503 \(after 3 attempts\); keeping the current configuration and retrying/, 15_000);
      expect(await world.snapshot(), 'nothing removed during the outage').toEqual(converged);

      // A kernel drift during the outage is repaired from the last good metadata.
      await world.ip(['rule', 'del', 'priority', GLOBAL_RULE_PRIORITY]);
      await expect.poll(() => world.snapshot(), { timeout: 5_000, interval: 100 }).toEqual(converged);

      // At least one more failed refresh (the backoff retry) before the service comes back.
      await expect.poll(async () => (await world.mock.log()).filter((e) => e.fault === 'status').length, { timeout: 15_000, interval: 200 }).toBeGreaterThanOrEqual(6);
      await world.mock.clearFaults();
      await daemon.waitForOutput(/info: metadata service answers again after \d+ failed attempt\(s\)/, 20_000);

      const outage = daemon.output().slice(mark);
      expect(errorLines(outage), outage).toEqual([expect.stringMatching(/HTTP 503/)]);
      expect(warningLines(outage), outage).toEqual([]);
      expect(await world.snapshot()).toEqual(converged);
      expect(await checkConfigured(world)).toEqual([]);
      expect(await daemon.stop()).toBe(0);
    } finally {
      await world.destroy();
    }
  });
});
