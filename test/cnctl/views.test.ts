// cnctl's views against the real API serving recorded fixtures of each cloud: golden text for
// the aligned views, the API's own JSON for --json.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixtureSource } from '../../src/context.js';
import type { ProviderName } from '../../src/model.js';
import { APPLIED, cnctl, copyFixture, FIXTURES, LAST_ERROR, LAST_REFRESH, startApi, startApiWithoutMetadata, type TestApi } from './support.js';

const GOLDEN = join(import.meta.dirname, 'golden');
const golden = (name: string) => readFileSync(join(GOLDEN, `${name}.txt`), 'utf8');

const CASES: Record<ProviderName, string> = { ec2: 'ec2/three-enis', azure: 'azure/three-nics', gcp: 'gcp/two-nics-aliases' };
const COMMON_VIEWS: Record<string, string[]> = {
  status: ['status'],
  'status-system': ['status', 'system'],
  'status-network': ['status', 'network'],
  'ssh-keys': ['show', 'ssh-keys'],
};
const CLOUD_VIEWS: Record<ProviderName, Record<string, string[]>> = {
  ec2: { credentials: ['show', 'credentials'], document: ['show', 'document'] },
  azure: {},
  gcp: { project: ['show', 'project'] },
};

const apis = {} as Record<ProviderName, TestApi>;
beforeAll(async () => {
  for (const provider of Object.keys(CASES) as ProviderName[]) apis[provider] = await startApi(join(FIXTURES, CASES[provider]));
});
afterAll(async () => {
  await Promise.all(Object.values(apis).map((api) => api.close()));
});

/** The documents the daemon keeps for a fixture, as the API serialises them. */
async function documentsOf(provider: ProviderName) {
  const metadata = await fixtureSource(join(FIXTURES, CASES[provider])).client.fetchMetadata({ documents: true });
  return JSON.parse(JSON.stringify(metadata.documents)) as Record<string, unknown> & { identity: Record<string, string> };
}

describe.each(Object.keys(CASES) as ProviderName[])('%s views', (provider) => {
  const views = Object.entries({ ...COMMON_VIEWS, ...CLOUD_VIEWS[provider] });

  it.each(views)('%s matches its golden text', async (name, args) => {
    const result = await cnctl(['--url', apis[provider].url, ...args]);
    expect(result.stderr).toBe('');
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toBe(golden(`${provider}-${name}`));
  });

  it('plan prints the script the fixture expects', async () => {
    const result = await cnctl(['--url', apis[provider].url, 'plan']);
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toBe(readFileSync(join(FIXTURES, CASES[provider], 'expected.batch'), 'utf8'));
  });

  it('--json prints the documents exactly as the API serves them', async () => {
    const documents = await documentsOf(provider);
    const json = async (...args: string[]) => {
      const result = await cnctl(['--url', apis[provider].url, '--json', ...args]);
      expect(result.exitCode).toBe(0);
      return JSON.parse(result.stdout) as unknown;
    };
    expect(await json('status', 'system')).toEqual(documents.system);
    expect(await json('status', 'network')).toEqual(documents.network);
    expect(await json('show', 'ssh-keys')).toEqual(documents.system);
    const status = (await json('status')) as { provider: string; lastRefresh: string; applied: unknown; interfaces: unknown[] };
    expect(status).toMatchObject({ provider, lastRefresh: LAST_REFRESH, applied: APPLIED });
    expect(status.interfaces).toHaveLength(provider === 'gcp' ? 2 : 3);
    const plan = (await json('plan')) as { script: string };
    expect(plan.script).toBe(readFileSync(join(FIXTURES, CASES[provider], 'expected.batch'), 'utf8'));
  });
});

describe('EC2-only views', () => {
  it('prints each identity signature as served', async () => {
    const { identity } = await documentsOf('ec2');
    for (const name of ['pkcs7', 'signature']) {
      const result = await cnctl(['--url', apis.ec2.url, 'show', name]);
      expect(result.exitCode).toBe(0);
      expect(result.stdout).toBe(`${identity[name]}\n`);
    }
  });

  it('--json credentials are redacted by the API', async () => {
    const result = await cnctl(['--url', apis.ec2.url, 'show', 'credentials', '--json']);
    expect(result.exitCode).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ AccessKeyId: 'ASIAIOSFODNN7EXAMPLE', SecretAccessKey: 'REDACTED', Token: 'REDACTED' });
    expect(result.stdout).not.toContain('wJalrXUtnFEMI');
  });

  it('--json document is the parsed identity document', async () => {
    const { identity } = await documentsOf('ec2');
    const result = await cnctl(['--json', '--url', apis.ec2.url, 'show', 'document']);
    expect(JSON.parse(result.stdout)).toEqual(JSON.parse(identity.document!));
  });
});

describe('other daemon states', () => {
  it('plan says so when nothing would change', async () => {
    const api = await startApi(join(FIXTURES, 'ec2/converged'));
    try {
      const result = await cnctl(['--url', api.url, 'plan']);
      expect(result.exitCode).toBe(0);
      expect(result.stdout).toBe('nothing to change\n');
    } finally {
      await api.close();
    }
  });

  it('status shows the last error of a daemon that has no metadata yet', async () => {
    const api = await startApiWithoutMetadata('ec2');
    try {
      const result = await cnctl(['--url', api.url, 'status']);
      expect(result.exitCode).toBe(0);
      expect(result.stdout).toBe(
        ['Provider:      ec2', 'Interfaces:    0 managed', 'Last refresh:  -', `Last error:    ${LAST_ERROR}`, 'Applied:       -', ''].join('\n'),
      );
    } finally {
      await api.close();
    }
  });

  it('an interface the daemon does not manage has no name or table', async () => {
    // Unmanaged = "eth1" keeps eth1 out of the plan, so the status does not list it.
    const api = await startApi(copyFixture('ec2/three-enis', { files: { 'cloud-network.toml': '[Network]\nUnmanaged = "eth1"\n' } }));
    try {
      const result = await cnctl(['--url', api.url, 'status', 'network']);
      expect(result.exitCode).toBe(0);
      const eth1 = result.stdout.split('\n\n').find((block) => block.includes('0a:75:69:92:e2:16'))!;
      expect(eth1).toMatch(/^Name: +-$/m);
      expect(eth1).toMatch(/^Route table: +-$/m);
    } finally {
      await api.close();
    }
  });
});

describe('alignment and escaping', () => {
  const LONG_HOSTNAME = `ip-172-31-44-13.${'very-long-label.'.repeat(8)}us-east-2.compute.internal`;
  const MANY_GROUPS = Array.from({ length: 12 }, (_, index) => `sg-${String(index).padStart(17, '0')}`);
  let api: TestApi;
  beforeAll(async () => {
    const edit = (paths: Record<string, string>) => {
      paths['/latest/meta-data/hostname'] = LONG_HOSTNAME;
      paths['/latest/meta-data/instance-type'] = 't3.large\u001b[2J\u009b1m';
      paths['/latest/meta-data/network/interfaces/macs/0a:5d:3e:11:7c:9a/security-group-ids'] = MANY_GROUPS.join('\n');
    };
    api = await startApi(copyFixture('ec2/three-enis', { edit }));
  });
  afterAll(() => api.close());

  /** Where each line's value starts: after "Label:" and the padding. */
  const valueColumns = (text: string) =>
    text
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => /^[^:]+:\s+/.exec(line)![0].length);

  it('keeps the value column of the system view however long a value is', async () => {
    const result = await cnctl(['--url', api.url, 'status', 'system']);
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain(`Hostname:           ${LONG_HOSTNAME}\n`);
    expect(new Set(valueColumns(result.stdout))).toEqual(new Set(['Availability zone:  '.length]));
  });

  it('keeps every interface block of the network view on one value column', async () => {
    const result = await cnctl(['--url', api.url, 'status', 'network']);
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain(`Security groups:  ${MANY_GROUPS.join(', ')}\n`);
    expect(new Set(valueColumns(result.stdout)).size).toBe(1);
  });

  it('shows control characters from the metadata escaped, never raw', async () => {
    const result = await cnctl(['--url', api.url, 'status', 'system']);
    expect(result.stdout).toContain('Instance type:      t3.large\\u001b[2J\\u009b1m\n');
    expect(result.stdout).not.toMatch(/[\u001b\u009b]/);
  });
});
