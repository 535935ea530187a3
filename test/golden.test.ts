// Golden tests: every recorded case under test/fixtures/<provider>/<case>/ must print exactly
// its expected.batch. They run the real CLI, as an unprivileged user when the suite runs as
// root, to prove that a dry run needs no privilege and no cloud.
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const CLI = join(import.meta.dirname, '..', 'bin', 'cloud-network');
const cases = readdirSync(FIXTURES, { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .flatMap((provider) =>
    readdirSync(join(FIXTURES, provider.name), { withFileTypes: true })
      .filter((entry) => entry.isDirectory() && existsSync(join(FIXTURES, provider.name, entry.name, 'expected.batch')))
      .map((entry) => `${provider.name}/${entry.name}`),
  );

/** Runs as nobody when we are root: a dry run must not need privileges. */
function dryRun(dir: string, extraEnv: Record<string, string> = {}) {
  const asNobody = process.getuid?.() === 0 ? ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups'] : [];
  const [command, ...args] = [...asNobody, process.execPath, CLI, '--dry-run', '--fixture', dir];
  return execa(command!, args, { reject: false, stripFinalNewline: false, extendEnv: false, env: { PATH: process.env.PATH, ...extraEnv } });
}

describe('golden dry runs', () => {
  it('has the cases the main-job issue asks for', () => {
    expect(cases.length).toBeGreaterThanOrEqual(11);
  });

  it.each(cases)('%s', async (name) => {
    const dir = join(FIXTURES, name);
    const result = await dryRun(dir);
    expect(result.stderr).not.toMatch(/^error/m);
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toBe(readFileSync(join(dir, 'expected.batch'), 'utf8'));
  });

  it('writes nothing, not even its state directory', async () => {
    const stateDir = join(mkdtempSync(join(tmpdir(), 'cn-golden-')), 'state');
    const result = await dryRun(join(FIXTURES, 'ec2/three-enis'), { CLOUD_NETWORK_STATE_DIR: stateDir });
    expect(result.exitCode).toBe(0);
    expect(existsSync(stateDir)).toBe(false);
  });

  it('refuses a fixture directory without metadata in one line with exit 2', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'cn-empty-'));
    chmodSync(empty, 0o755); // the dry run runs as nobody
    const result = await dryRun(empty);
    expect(result.exitCode).toBe(2);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/cannot use fixture .*: it has no metadata\.json$/m);
  });

  it('logs its errors in the configured format too (LogFormat = "json")', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cn-json-'));
    chmodSync(dir, 0o755); // the dry run runs as nobody
    writeFileSync(join(dir, 'cloud-network.toml'), '[System]\nLogFormat = "json"\n', { mode: 0o644 });
    const result = await dryRun('/nonexistent/fixture', { CLOUD_NETWORK_CONFIG: join(dir, 'cloud-network.toml') });
    expect(result.exitCode).toBe(2);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 'error', msg: 'cannot use fixture /nonexistent/fixture: no such directory' });
  });

  it.each([
    ['a missing directory', '/nonexistent/fixture', 'no such directory'],
    ['a file', join(FIXTURES, 'README.md'), 'it is not a directory'],
  ])('refuses %s as a fixture in plain words', async (_what, dir, why) => {
    const result = await dryRun(dir);
    expect(result.exitCode).toBe(2);
    expect(result.stderr.trim()).toBe(`error: cannot use fixture ${dir}: ${why}`);
  });
});
