// Starts the mock IMDS as its own process (optionally inside a network namespace) and steers it
// through its Unix-socket control API. Node 20 cannot run TypeScript directly, so the entry is
// bundled with esbuild once per source version into a cached .mjs file.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { REPO_ROOT, type Fixture } from './fixture.js';
import { httpRequest } from './http.js';
import type { ActiveFault, Fault, LogEntry, MetadataPatch, MockImdsOptions, MockImdsState } from './mock-imds.js';

const SOURCES = ['mock-imds-main.ts', 'mock-imds.ts'].map((f) => join(REPO_ROOT, 'test/support', f));

let bundlePromise: Promise<string> | undefined;

/** Path of the bundled mock entry (built on first use, reused while the sources are unchanged). */
export function mockImdsBundle(): Promise<string> {
  bundlePromise ??= (async () => {
    const hash = createHash('sha256');
    for (const f of SOURCES) hash.update(readFileSync(f));
    const dir = join(tmpdir(), 'cloud-network-test');
    const out = join(dir, `mock-imds-${hash.digest('hex').slice(0, 16)}.mjs`);
    if (existsSync(out)) return out;
    mkdirSync(dir, { recursive: true });
    const result = await build({
      entryPoints: [SOURCES[0]!],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      write: false,
      logLevel: 'silent',
    });
    // Parallel test workers may bundle at once: write privately, then rename atomically.
    const tmp = `${out}.${process.pid}.tmp`;
    writeFileSync(tmp, result.outputFiles[0]!.contents);
    renameSync(tmp, out);
    // Bundles of older source versions are dead weight.
    for (const f of readdirSync(dir)) {
      if (/^mock-imds-[0-9a-f]{16}\.mjs$/.test(f) && join(dir, f) !== out) rmSync(join(dir, f), { force: true });
    }
    return out;
  })();
  return bundlePromise;
}

export interface StartMockImdsOptions {
  fixture: Fixture;
  options?: MockImdsOptions;
  /** Network namespace to run in (via `ip netns exec`); omitted: the host's loopback. */
  netns?: string;
  /** Directory for the config file and the control socket (default: a new temp dir, removed on stop). */
  dir?: string;
  /** Port inside the namespace (default 0 = any free port). */
  port?: number;
  /** How long to wait for "READY" (default 10 s). */
  startTimeoutMs?: number;
}

/** Starts a mock IMDS process and resolves once it listens. */
export async function startMockImds(o: StartMockImdsOptions): Promise<MockImds> {
  const bundle = await mockImdsBundle();
  const ownDir = o.dir === undefined;
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'cn-mock-'));
  const controlSocket = join(dir, 'mock-imds.sock');
  const configFile = join(dir, 'mock-imds.json');
  writeFileSync(configFile, JSON.stringify({ fixture: o.fixture, options: o.options ?? {}, port: o.port ?? 0, controlSocket }));
  const argv = [process.execPath, bundle, '--config', configFile];
  const child = o.netns ? spawn('ip', ['netns', 'exec', o.netns, ...argv], { stdio: 'pipe' }) : spawn(argv[0]!, argv.slice(1), { stdio: 'pipe' });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));

  const port = await new Promise<number>((resolve, reject) => {
    let stdout = '';
    const fail = (why: string): void => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`mock IMDS did not start (${why})${o.netns ? ` in netns ${o.netns}` : ''}\nstdout: ${stdout}\nstderr: ${stderr}`));
    };
    const timer = setTimeout(() => fail('no READY line'), o.startTimeoutMs ?? 10_000);
    child.once('error', (e) => fail(e.message));
    child.once('exit', (code, sig) => fail(`exited with ${code ?? sig}`));
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      const m = /^READY (\d+)$/m.exec(stdout);
      if (m) {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        resolve(Number(m[1]));
      }
    });
  });
  return new MockImds(child, port, controlSocket, () => stderr, ownDir ? dir : undefined);
}

/** Handle on a running mock IMDS process. Every method talks to its control socket. */
export class MockImds {
  /** Base URL as the program sees it inside the namespace (CLOUD_NETWORK_ENDPOINT). */
  readonly endpoint: string;
  private exited: Promise<void>;

  constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    readonly controlSocket: string,
    /** What the mock wrote on stderr so far (its crash reports). */
    readonly stderr: () => string,
    private readonly ownDir: string | undefined,
  ) {
    this.endpoint = `http://127.0.0.1:${port}`;
    this.exited = new Promise((r) => child.once('exit', () => r()));
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await httpRequest({
      socketPath: this.controlSocket,
      url: path,
      method,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    if (res.status !== 200) throw new Error(`mock control ${method} ${path}: ${res.status} ${res.body}`);
    return JSON.parse(res.body) as T;
  }

  state(): Promise<MockImdsState> {
    return this.call('GET', '/state');
  }
  async fixture(): Promise<Fixture> {
    return (await this.state()).fixture;
  }
  /** Replaces the served metadata (wakes GCP wait_for_change requests). */
  async setFixture(f: Fixture): Promise<void> {
    await this.call('PUT', '/fixture', f);
  }
  /** Sets (string) or deletes (null) paths; replaces notFound when given. */
  async patch(p: MetadataPatch): Promise<void> {
    await this.call('PATCH', '/fixture', p);
  }
  async setOptions(o: MockImdsOptions): Promise<void> {
    await this.call('PUT', '/options', o);
  }
  /** Adds a fault; returns its id. */
  async addFault(f: Fault): Promise<number> {
    return (await this.call<{ id: number }>('POST', '/faults', f)).id;
  }
  async removeFault(id: number): Promise<void> {
    await this.call('DELETE', `/faults/${id}`);
  }
  async clearFaults(): Promise<void> {
    await this.call('DELETE', '/faults');
  }
  async faults(): Promise<ActiveFault[]> {
    return (await this.state()).faults;
  }
  /** Request log (entries after `sinceSeq`). */
  log(sinceSeq = 0): Promise<LogEntry[]> {
    return this.call('GET', `/log?since=${sinceSeq}`);
  }
  async resetLog(): Promise<void> {
    await this.call('DELETE', '/log');
  }
  async expireTokens(): Promise<void> {
    await this.call('POST', '/tokens/expire');
  }
  /** Moves the mock's clock forward (EC2 token expiry without waiting). */
  async advanceClock(seconds: number): Promise<void> {
    await this.call('POST', '/clock', { advanceSeconds: seconds });
  }

  /** Polls the log until an entry matches (no fixed sleeps); rejects after timeoutMs. */
  async waitForRequest(match: (e: LogEntry) => boolean, timeoutMs = 5000): Promise<LogEntry> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = (await this.log()).find(match);
      if (hit) return hit;
      if (Date.now() > deadline) throw new Error(`mock IMDS: no matching request within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Stops the process (SIGTERM, then SIGKILL) and removes its temp dir. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      const killer = setTimeout(() => this.child.kill('SIGKILL'), 2000);
      await this.exited;
      clearTimeout(killer);
    }
    if (this.ownDir) rmSync(this.ownDir, { recursive: true, force: true });
  }
}
