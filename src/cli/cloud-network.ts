// `cloud-network`: the daemon, and its one-shot and dry-run modes (SPEC §2).
import { defineCommand, runMain } from 'citty';
import type { LoadedConfig } from '../config.js';
import { EXIT, ExitError, fixtureSource, liveSource, loadConfigOrExit } from '../context.js';
import { ImdsError } from '../imds/http.js';
import { IpError } from '../ip.js';
import { acquireLock, LockedError } from '../lock.js';
import { createLogger, type Logger } from '../log.js';
import { plan } from '../plan.js';
import { runUnprivileged, shouldDropPrivileges } from '../privilege.js';
import { planLive, reconcile, recordDocuments, recordFailure } from '../reconcile.js';
import { renderScript } from '../render.js';
import { prepareStateDir, stateDirFrom } from '../state.js';
import { VERSION } from '../version.js';

const args = {
  once: { type: 'boolean', description: 'one fetch and reconcile, then exit' },
  'dry-run': { type: 'boolean', description: 'print the ip -batch script that would run; change and write nothing' },
  fixture: { type: 'string', description: 'with --dry-run: read recorded metadata and kernel state from DIR', valueHint: 'DIR' },
  config: { type: 'string', description: 'config file (default /etc/cloud-network/cloud-network.toml; env CLOUD_NETWORK_CONFIG)', valueHint: 'PATH' },
  provider: { type: 'string', description: 'ec2, azure or gcp: skip DMI detection (env CLOUD_NETWORK_PROVIDER)', valueHint: 'NAME' },
  'check-config': { type: 'boolean', description: 'validate the config file, print problems, exit 0 or 2' },
} as const;

type Options = { once?: boolean; dryRun?: boolean; fixture?: string; config?: string; provider?: string; checkConfig?: boolean };

function reportProblems(loaded: LoadedConfig, log: Logger): void {
  for (const problem of loaded.problems) {
    if (problem.severity === 'error') log.error(`config: ${problem.message}`);
    else log.warn(`config: ${problem.message}`);
  }
}

async function dryRun(options: Options, loaded: LoadedConfig, log: Logger): Promise<number> {
  if (options.fixture) {
    const fixture = fixtureSource(options.fixture);
    const explicitConfig = options.config ?? process.env.CLOUD_NETWORK_CONFIG;
    const config = (explicitConfig ? loaded : (fixture.config ?? loaded)).config;
    const metadata = await fixture.client.fetchMetadata({ documents: false });
    const result = plan(metadata, fixture.kernel, config, fixture.state);
    for (const notice of result.notices) log.warn(notice);
    process.stdout.write(renderScript(result.changes));
    return EXIT.ok;
  }
  const source = liveSource(options.provider, process.env);
  try {
    const metadata = await source.client.fetchMetadata({ documents: false });
    const result = await planLive(metadata, loaded.config, stateDirFrom(process.env));
    for (const notice of result.notices) log.warn(notice);
    process.stdout.write(renderScript(result.changes));
    return EXIT.ok;
  } finally {
    source.transport.close();
  }
}

async function once(options: Options, loaded: LoadedConfig, log: Logger): Promise<number> {
  const source = liveSource(options.provider, process.env);
  const stateDir = stateDirFrom(process.env);
  prepareStateDir(stateDir);
  const releaseLock = acquireLock(stateDir);
  try {
    let metadata;
    try {
      metadata = await source.client.fetchMetadata({ documents: true });
    } catch (error) {
      if (error instanceof ImdsError) recordFailure(stateDir, error.message);
      throw error;
    }
    const result = await reconcile(metadata, loaded.config, stateDir, log, { readAt: new Date().toISOString() });
    recordDocuments(metadata, result.plan, stateDir);
    if (result.failures.length > 0) {
      log.error(`${result.failures.length} of ${result.plan.changes.length} changes failed; see the lines above`);
      return EXIT.runtime;
    }
    log.info(`${source.provider}: ${result.plan.managed.length} interface(s) managed, ${result.plan.changes.length} change(s) applied`);
    return EXIT.ok;
  } finally {
    releaseLock();
    source.transport.close();
  }
}

async function main(options: Options): Promise<number> {
  const log = createLogger();
  try {
    if (options.fixture && !options.dryRun) throw new ExitError('--fixture works only with --dry-run', EXIT.usage);
    const loaded = loadConfigOrExit(options.config, process.env);
    const configured = createLogger(loaded.config.logLevel, loaded.config.logFormat);
    if (options.checkConfig) {
      reportProblems(loaded, configured);
      const errors = loaded.problems.filter((problem) => problem.severity === 'error').length;
      if (errors === 0) process.stdout.write(`${loaded.path ?? 'no config file; defaults'}: OK\n`);
      return errors === 0 ? EXIT.ok : EXIT.usage;
    }
    reportProblems(loaded, configured);
    if (options.dryRun) return await dryRun(options, loaded, configured);
    if (shouldDropPrivileges()) {
      prepareStateDir(stateDirFrom(process.env));
      const exitCode = await runUnprivileged(stateDirFrom(process.env), configured);
      if (exitCode !== undefined) return exitCode;
    }
    if (options.once) return await once(options, loaded, configured);
    const { runDaemon } = await import('../daemon.js');
    return await runDaemon({ configFlag: options.config, providerFlag: options.provider }, loaded, configured);
  } catch (error) {
    if (error instanceof ExitError) {
      log.error(error.message);
      return error.exitCode;
    }
    if (error instanceof ImdsError || error instanceof IpError || error instanceof LockedError) {
      log.error(error.message);
      return EXIT.runtime;
    }
    log.error(`unexpected failure: ${(error as Error).stack ?? String(error)}`);
    return EXIT.runtime;
  }
}

const KNOWN = new Set(['_', ...Object.keys(args), 'dryRun', 'checkConfig']);

const command = defineCommand({
  meta: { name: 'cloud-network', version: VERSION, description: 'Configures cloud-assigned addresses and policy routing from instance metadata' },
  args,
  async run({ args: parsed }) {
    const unknown = Object.keys(parsed).filter((key) => !KNOWN.has(key));
    if (unknown.length > 0 || parsed._.length > 0) {
      process.stderr.write(`error: unknown argument ${[...unknown.map((key) => `--${key}`), ...parsed._].join(' ')}; see cloud-network --help\n`);
      process.exit(EXIT.usage);
    }
    process.exit(await main(parsed as Options));
  },
});

void runMain(command);
