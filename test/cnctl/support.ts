// The real API (src/api.ts) fed from a recorded fixture, and the real bin/cnctl run against it.
// The fixture goes through the real provider parser and planner, exactly as `cloud-network
// --dry-run --fixture DIR` does, so /api/v1/plan answers that fixture's expected.batch.
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { createApi, listen, statusDocument } from '../../src/api.js';
import { DEFAULT_CONFIG } from '../../src/config.js';
import { fixtureSource } from '../../src/context.js';
import { plan } from '../../src/plan.js';

export const FIXTURES = join(import.meta.dirname, '..', 'fixtures');
const CNCTL = join(import.meta.dirname, '..', '..', 'bin', 'cnctl');

/** What the test daemon last recorded: fixed, so that the views are golden. */
export const LAST_REFRESH = '2026-12-03T10:00:00.000Z';
export const APPLIED = { addresses: 7, routes: 9, rules: 13 };
export const LAST_ERROR = 'metadata request GET http://127.0.0.1:9/latest/meta-data/mac failed: connection refused (after 3 attempts)';

export interface TestApi {
  url: string;
  close(): Promise<void>;
}

async function serve(app: ReturnType<typeof createApi>): Promise<TestApi> {
  const server: Server = await listen(app, '127.0.0.1', 0);
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** The API of a daemon that has read the fixture in `dir` (a directory under test/fixtures, or a copy). */
export async function startApi(dir: string): Promise<TestApi> {
  const fixture = fixtureSource(dir);
  const metadata = await fixture.client.fetchMetadata({ documents: true });
  const planned = plan(metadata, fixture.kernel, fixture.config?.config ?? DEFAULT_CONFIG, fixture.state);
  const status = () => statusDocument(fixture.provider, planned, { lastRefresh: LAST_REFRESH, applied: APPLIED });
  return serve(createApi({ metadata: () => metadata, status, plan: async () => planned }));
}

/** The API of a daemon whose metadata service has never answered. */
export function startApiWithoutMetadata(provider: string): Promise<TestApi> {
  const status = () => statusDocument(provider, undefined, { lastError: LAST_ERROR });
  return serve(createApi({ metadata: () => undefined, status, plan: async () => undefined }));
}

/** A copy of a fixture: metadata.json bodies changed by `edit`, and `files` (e.g. cloud-network.toml) added. */
export function copyFixture(
  name: string,
  { edit, files = {} }: { edit?: (paths: Record<string, string>) => void; files?: Record<string, string> },
): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'cnctl-fixture-')), 'case');
  cpSync(join(FIXTURES, name), dir, { recursive: true });
  const file = join(dir, 'metadata.json');
  const recorded = JSON.parse(readFileSync(file, 'utf8')) as { paths: Record<string, string> };
  edit?.(recorded.paths);
  writeFileSync(file, JSON.stringify(recorded));
  for (const [fileName, content] of Object.entries(files)) writeFileSync(join(dir, fileName), content);
  return dir;
}

/** Runs bin/cnctl with nothing from our environment but PATH (no CLOUD_NETWORK_CONFIG, no colours). */
export function cnctl(args: string[], env: Record<string, string> = {}) {
  return execa(process.execPath, [CNCTL, ...args], {
    reject: false,
    stripFinalNewline: false,
    extendEnv: false,
    env: { PATH: process.env.PATH, NO_COLOR: '1', ...env },
  });
}
