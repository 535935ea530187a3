// Packaging (issue 5): builds the .deb and the .rpm, checks their contents, installs the .deb on
// this machine, runs the installed binaries, removes and purges it. Needs root, dpkg, rpmbuild,
// lintian and systemd-analyze (see packaging/README.md). It changes the machine's installed
// packages, so everything lives in this one file (its tests run in order) and afterAll purges.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG, loadConfig } from '../../src/config.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const DEB = join(ROOT, 'build', `cloud-network_${VERSION}_all.deb`);
const RPM = join(ROOT, 'build', `cloud-network-setup-${VERSION}-1.noarch.rpm`);
const FIXTURE = join(ROOT, 'test', 'fixtures', 'ec2', 'three-enis');

const CONFFILES = ['/etc/cloud-network/cloud-network.toml', '/etc/iproute2/rt_protos.d/cloud-network.conf'];
const DOC = '/usr/share/doc/cloud-network';
// Files and directories both packages ship (directories end in /).
const COMMON = [
  '/etc/cloud-network/',
  ...CONFFILES,
  '/usr/bin/cloud-network',
  '/usr/bin/cnctl',
  '/usr/lib/cloud-network/',
  '/usr/lib/cloud-network/cloud-network.mjs',
  '/usr/lib/cloud-network/cnctl.mjs',
  '/usr/lib/systemd/system/cloud-network.service',
  '/usr/lib/sysusers.d/cloud-network.conf',
  '/usr/share/man/man1/cnctl.1.gz',
  '/usr/share/man/man8/cloud-network.8.gz',
  `${DOC}/`,
  `${DOC}/THIRD-PARTY-NOTICES`,
  `${DOC}/examples/`,
  `${DOC}/examples/networkd.conf.d/`,
  `${DOC}/examples/networkd.conf.d/cloud-network.conf`,
];
// The .deb lists every directory of its tree and carries Debian's copyright and changelog files.
const DEB_ONLY = [
  '/',
  '/etc/',
  '/etc/iproute2/',
  '/etc/iproute2/rt_protos.d/',
  '/usr/',
  '/usr/bin/',
  '/usr/lib/',
  '/usr/lib/systemd/',
  '/usr/lib/systemd/system/',
  '/usr/lib/sysusers.d/',
  '/usr/share/',
  '/usr/share/doc/',
  '/usr/share/man/',
  '/usr/share/man/man1/',
  '/usr/share/man/man8/',
  `${DOC}/changelog.gz`,
  `${DOC}/copyright`,
];
// The .rpm owns only its own directories, rt_protos.d included (iproute2 may not ship it).
const RPM_ONLY = ['/etc/iproute2/rt_protos.d/'];

async function run(command: string, args: string[], env: Record<string, string> = {}) {
  const result = await execa(command, args, { cwd: ROOT, reject: false, env, stdin: 'ignore' });
  return { code: result.exitCode, stdout: result.stdout, stderr: result.stderr, all: `${result.stdout}\n${result.stderr}` };
}

async function must(command: string, args: string[]) {
  const result = await run(command, args);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.code}:\n${result.all}`);
  return result;
}

const installed = async () => (await run('dpkg-query', ['-W', '-f=${db:Status-Status}', 'cloud-network'])).stdout;

const sorted = (list: string[]) => [...list].sort();

let userExisted = false;
let uid89Free = false;

beforeAll(async () => {
  // A run that was killed may have left the package behind.
  if ((await installed()) !== '') await must('dpkg', ['--purge', 'cloud-network']);
  userExisted = (await run('getent', ['passwd', 'cloud-network'])).code === 0;
  uid89Free = (await run('getent', ['passwd', '89'])).code !== 0;
  await must('make', ['--no-print-directory', 'deb', 'rpm']);
}, 300_000);

afterAll(async () => {
  if ((await installed()) !== '') await run('dpkg', ['--purge', 'cloud-network']);
  if (!userExisted && (await run('getent', ['passwd', 'cloud-network'])).code === 0) {
    await run('userdel', ['cloud-network']);
    if ((await run('getent', ['group', 'cloud-network'])).code === 0) await run('groupdel', ['cloud-network']);
  }
}, 120_000);

describe('the shipped configuration file', () => {
  it('is valid and its commented values are the defaults', () => {
    const shipped = join(ROOT, 'packaging', 'cloud-network.toml');
    expect(loadConfig(shipped, true, {})).toEqual({ config: DEFAULT_CONFIG, problems: [], path: shipped });

    const dir = mkdtempSync(join(tmpdir(), 'cn-config-'));
    try {
      const uncommented = join(dir, 'cloud-network.toml');
      const text = readFileSync(shipped, 'utf8').replace(/^#([A-Za-z]+ = )/gm, '$1');
      expect(text.match(/^[A-Za-z]+ = /gm)).toHaveLength(10);
      writeFileSync(uncommented, text);
      expect(loadConfig(uncommented, true, {})).toEqual({ config: DEFAULT_CONFIG, problems: [], path: uncommented });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('make install / uninstall', () => {
  it('installs under PREFIX with paths substituted, and uninstall keeps only /etc', async () => {
    const dest = mkdtempSync(join(tmpdir(), 'cn-install-'));
    try {
      await must('make', ['--no-print-directory', 'install', `DESTDIR=${dest}`, 'PREFIX=/opt/cn']);
      expect(readFileSync(join(dest, 'opt/cn/bin/cloud-network'), 'utf8')).toBe(
        '#!/bin/sh\nexec /usr/bin/node --lite-mode --no-expose-wasm /opt/cn/lib/cloud-network/cloud-network.mjs "$@"\n',
      );
      expect(readFileSync(join(dest, 'opt/cn/bin/cnctl'), 'utf8')).toContain(' /opt/cn/lib/cloud-network/cnctl.mjs "$@"');
      expect(readFileSync(join(dest, 'opt/cn/lib/systemd/system/cloud-network.service'), 'utf8')).toMatch(
        /^ExecStart=\/opt\/cn\/bin\/cloud-network$/m,
      );
      // An existing configuration is not overwritten.
      writeFileSync(join(dest, 'etc/cloud-network/cloud-network.toml'), '# mine\n');
      await must('make', ['--no-print-directory', 'install', `DESTDIR=${dest}`, 'PREFIX=/opt/cn']);
      expect(readFileSync(join(dest, 'etc/cloud-network/cloud-network.toml'), 'utf8')).toBe('# mine\n');

      await must('make', ['--no-print-directory', 'uninstall', `DESTDIR=${dest}`, 'PREFIX=/opt/cn']);
      const left = (await must('find', [dest, '-type', 'f'])).stdout.split('\n').map((f) => f.slice(dest.length));
      expect(sorted(left)).toEqual(sorted(CONFFILES));
      expect(existsSync(join(dest, 'opt/cn/lib/cloud-network'))).toBe(false);
      expect(existsSync(join(dest, 'opt/cn/share/doc/cloud-network'))).toBe(false);
    } finally {
      rmSync(dest, { recursive: true, force: true });
    }
  });
});

describe('the .deb', () => {
  it('contains exactly the expected files, owned by root', async () => {
    const lines = (await must('dpkg-deb', ['-c', DEB])).stdout.split('\n');
    const entries = lines.map((line) => {
      const [mode, owner, , , , path] = line.split(/\s+/);
      return { mode: mode!, owner: owner!, path: path!.replace(/^\./, '') };
    });
    expect(sorted(entries.map((e) => e.path))).toEqual(sorted([...COMMON, ...DEB_ONLY]));
    for (const entry of entries) {
      expect(entry.owner, entry.path).toBe('root/root');
      const expected = entry.path.endsWith('/') ? 'drwxr-xr-x' : entry.path.startsWith('/usr/bin/') ? '-rwxr-xr-x' : '-rw-r--r--';
      expect(entry.mode, entry.path).toBe(expected);
    }
  });

  it('has the control data of this version', async () => {
    const field = async (name: string) => (await must('dpkg-deb', ['--field', DEB, name])).stdout;
    expect(await field('Package')).toBe('cloud-network');
    expect(await field('Version')).toBe(VERSION);
    expect(await field('Architecture')).toBe('all');
    expect(await field('Depends')).toMatch(/^nodejs \(>= 20\), iproute2, util-linux/);
    expect((await must('dpkg-deb', ['--info', DEB, 'conffiles'])).stdout.split('\n')).toEqual(CONFFILES);
    const changelog = (await must('sh', ['-c', `zcat '${join(ROOT, 'build/deb', DOC, 'changelog.gz')}' | head -1`])).stdout;
    expect(changelog).toMatch(new RegExp(`^cloud-network \\(${VERSION.replace(/\./g, '\\.')}\\) `));
  });

  it('has no lintian errors', async () => {
    const result = await run('lintian', ['--fail-on', 'error', DEB]);
    expect(result.all).not.toMatch(/^E: /m);
    expect(result.code, result.all).toBe(0);
  }, 180_000);
});

describe('the .rpm', () => {
  it('contains exactly the expected files', async () => {
    // Mode and name of each entry; directories get a trailing / as in the lists above.
    const lines = (await must('rpm', ['-qp', '--qf', '[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILENAMES}\\n]', RPM])).stdout;
    const entries = lines.split('\n').map((line) => {
      const [mode, owner, path] = line.split(' ');
      return { mode: mode!, owner: owner!, path: mode!.startsWith('d') ? `${path}/` : path! };
    });
    expect(sorted(entries.map((e) => e.path))).toEqual(sorted([...COMMON, ...RPM_ONLY]));
    for (const entry of entries) expect(entry.owner, entry.path).toBe('root:root');
  });

  it('has this version, its dependencies, config files and scriptlets', async () => {
    const query = async (format: string) => (await must('rpm', ['-qp', '--qf', format, RPM])).stdout;
    expect(await query('%{NAME} %{VERSION} %{ARCH}')).toBe(`cloud-network-setup ${VERSION} noarch`);
    const spec = readFileSync(join(ROOT, 'packaging/rpm/cloud-network-setup.spec'), 'utf8');
    expect(spec).toMatch(new RegExp(`^Version:\\s+${VERSION.replace(/\./g, '\\.')}$`, 'm'));
    const requires = (await must('rpm', ['-qp', '--requires', RPM])).stdout.split('\n');
    expect(requires).toEqual(expect.arrayContaining(['nodejs >= 20', 'iproute2', 'util-linux', 'systemd']));
    expect((await must('rpm', ['-qpc', RPM])).stdout.split('\n')).toEqual(CONFFILES);
    expect(await query('%{PREIN}')).toContain('cloud-network');
    expect(await query('%{POSTIN}')).toContain('cloud-network.service');
    expect(await query('%{PREUN}')).toContain('cloud-network.service');
    expect(await query('%{POSTUN}')).toContain('cloud-network.service');
  });
});

describe('the .deb installed on this machine', () => {
  it('installs and creates the cloud-network user', async () => {
    await must('dpkg', ['--install', DEB]);
    expect(await installed()).toBe('installed');
    const user = (await must('getent', ['passwd', 'cloud-network'])).stdout.split(':');
    if (!userExisted && uid89Free) expect(user[2]).toBe('89');
    expect(existsSync('/etc/systemd/system/multi-user.target.wants/cloud-network.service')).toBe(true);
  }, 120_000);

  it('runs cloud-network --version', async () => {
    const result = await run('/usr/bin/cloud-network', ['--version']);
    expect(result.code, result.all).toBe(0);
    expect(result.stdout.trim()).toBe(VERSION);
    expect(result.stderr, 'the launcher\'s node flags draw no warning').toBe('');
  });

  it('runs cloud-network --check-config on the installed configuration', async () => {
    const result = await run('/usr/bin/cloud-network', ['--check-config']);
    expect(result.code, result.all).toBe(0);
  });

  it('runs cloud-network --dry-run --fixture', async () => {
    const result = await run('/usr/bin/cloud-network', ['--dry-run', '--fixture', FIXTURE]);
    expect(result.code, result.all).toBe(0);
    expect(result.stdout.trimEnd()).toBe(readFileSync(join(FIXTURE, 'expected.batch'), 'utf8').trimEnd());
  });

  it('runs cnctl --help', async () => {
    const result = await run('/usr/bin/cnctl', ['--help']);
    expect(result.code, result.all).toBe(0);
    expect(result.all).toMatch(/status/);
  });

  it('has a unit that systemd-analyze verify accepts', async () => {
    const result = await run('systemd-analyze', ['verify', '/usr/lib/systemd/system/cloud-network.service']);
    expect(result.code, result.all).toBe(0);
    expect(result.all).not.toMatch(/cloud-network/);
  });

  it('has a unit whose systemd-analyze security exposure stays at most 2.0', async () => {
    const result = await run('systemd-analyze', ['security', '--offline=true', '--no-pager', '/usr/lib/systemd/system/cloud-network.service']);
    const score = /Overall exposure level for cloud-network\.service: (\d+\.\d+)/.exec(result.stdout);
    expect(score, result.all).not.toBeNull();
    expect(Number(score![1])).toBeLessThanOrEqual(2.0);
  });

  it('leaves only its configuration files behind when removed', async () => {
    await must('dpkg', ['--remove', 'cloud-network']);
    expect(await installed()).toBe('config-files');
    for (const path of COMMON) {
      const kept = CONFFILES.includes(path) || path === '/etc/cloud-network/';
      expect(existsSync(path), path).toBe(kept);
    }
  }, 120_000);

  it('leaves nothing behind when purged', async () => {
    await must('dpkg', ['--purge', 'cloud-network']);
    expect(await installed()).toBe('');
    for (const path of COMMON) expect(existsSync(path), path).toBe(false);
    const leftovers = await must('find', ['/etc/systemd/system', '/var/lib/systemd', '-name', '*cloud-network*']);
    expect(leftovers.stdout).toBe('');
  }, 120_000);
});
