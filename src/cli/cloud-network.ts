// `cloud-network`: the daemon, and its one-shot and dry-run modes (SPEC §2).
import { defineCommand, runMain } from 'citty';
import type { LoadedConfig } from '../config.js';
import { chooseProvider, EXIT, ExitError, fixtureSource, liveSource, loadConfigOrExit } from '../context.js';
import { ImdsError } from '../imds/http.js';
import { IpError } from '../ip.js';
import { acquireLock, LockedError } from '../lock.js';
import { createLogger, type Logger } from '../log.js';
import { plan, type Plan } from '../plan.js';
import { runUnprivileged, shouldDropPrivileges } from '../privilege.js';
import { planLive, reconcile, recordDocuments, recordFailure } from '../reconcile.js';
import { renderScript } from '../render.js';
import { prepareStateDir, StateDirError, stateDirFrom } from '../state.js';
import { VERSION } from '../version.js';
import { printUsage } from './usage.js';

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
    if (problem.severity === 'error') log.error(`config: ${problem.message}; using the default`);
    else log.warn(`config: ${problem.message}`);
  }
}

async function dryRun(options: Options, loaded: LoadedConfig, log: Logger): Promise<number> {
  let result: Plan;
  if (options.fixture) {
    const fixture = fixtureSource(options.fixture);
    // The fixture's own config applies unless one is named explicitly.
    const explicitConfig = options.config ?? process.env.CLOUD_NETWORK_CONFIG;
    const config = (explicitConfig ? loaded : (fixture.config ?? loaded)).config;
    result = plan(await fixture.client.fetchMetadata({ documents: false }), fixture.kernel, config, fixture.state);
  } else {
    const source = liveSource(options.provider, process.env);
    try {
      result = await planLive(await source.client.fetchMetadata({ documents: false }), loaded.config, stateDirFrom(process.env));
    } finally {
      source.transport.close();
    }
  }
  for (const notice of result.notices) log.warn(notice);
  // stdout is the script alone, ready for `ip -batch -`; the verdict goes to stderr.
  process.stdout.write(renderScript(result.changes));
  if (result.changes.length === 0) log.info('nothing to change');
  return EXIT.ok;
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
  let log = createLogger();
  try {
    const loaded = loadConfigOrExit(options.config, process.env);
    if (options.checkConfig) {
      if (options.provider) chooseProvider(options.provider, process.env);
      // Plain text whatever the file says about LogFormat: this output is for a person.
      reportProblems(loaded, log);
      const errors = loaded.problems.filter((problem) => problem.severity === 'error').length;
      const file = loaded.path ?? 'no config file, defaults';
      process.stdout.write(errors === 0 ? `${file}: OK\n` : `${file}: ${errors} invalid value(s)\n`);
      return errors === 0 ? EXIT.ok : EXIT.usage;
    }
    // From here on every line, errors included, is in the configured format.
    log = createLogger(loaded.config.logLevel, loaded.config.logFormat);
    reportProblems(loaded, log);
    if (options.dryRun) return await dryRun(options, loaded, log);
    chooseProvider(options.provider, process.env); // usage errors before anything else happens
    if (shouldDropPrivileges()) {
      prepareStateDir(stateDirFrom(process.env));
      const exitCode = await runUnprivileged(stateDirFrom(process.env), log);
      if (exitCode !== undefined) return exitCode;
    }
    if (options.once) return await once(options, loaded, log);
    const { runDaemon } = await import('../daemon.js');
    return await runDaemon({ configFlag: options.config, providerFlag: options.provider }, loaded, log);
  } catch (error) {
    if (error instanceof ExitError) {
      log.error(error.message);
      return error.exitCode;
    }
    if (error instanceof ImdsError || error instanceof IpError || error instanceof LockedError || error instanceof StateDirError) {
      log.error(error.message);
      return EXIT.runtime;
    }
    log.error(`unexpected failure: ${(error as Error).message ?? String(error)}`);
    log.debug((error as Error).stack ?? '');
    return EXIT.runtime;
  }
}

/** Checks what citty cannot: values present, no unknown or conflicting flags. Returns a usage error or the options. */
export function checkArguments(parsed: Record<string, unknown> & { _: string[] }): Options | string {
  const known = new Set(['_', ...Object.keys(args), 'dryRun', 'checkConfig']);
  const unknown = Object.keys(parsed).filter((key) => !known.has(key));
  if (unknown.length > 0 || parsed._.length > 0) {
    return `unknown argument ${[...unknown.map((key) => (key.length === 1 ? `-${key}` : `--${key}`)), ...parsed._].join(' ')}`;
  }
  for (const name of ['fixture', 'config', 'provider'] as const) {
    const value = parsed[name];
    if (value !== undefined && (typeof value !== 'string' || value === '' || value.startsWith('-'))) return `--${name} needs a value`;
  }
  const options = parsed as Options;
  if (options.fixture && !options.dryRun) return '--fixture works only with --dry-run';
  if (options.fixture && options.provider) return '--provider does not apply to --fixture: the fixture names its provider';
  const modes = [options.once && '--once', options.dryRun && '--dry-run', options.checkConfig && '--check-config'].filter(Boolean);
  if (modes.length > 1) return `${modes.join(' and ')} cannot be combined`;
  return options;
}

const HELP_FOOTER = `Without --once, --dry-run or --check-config it runs as a daemon until stopped.

ENVIRONMENT
  CLOUD_NETWORK_CONFIG     config file (as --config)
  CLOUD_NETWORK_PROVIDER   ec2, azure or gcp (as --provider)
  CLOUD_NETWORK_ENDPOINT   metadata base URL (default http://169.254.169.254, GCP http://metadata.google.internal)
  CLOUD_NETWORK_STATE_DIR  state directory (default /run/cloud-network)
  CLOUD_NETWORK_DMI_DIR    DMI directory for cloud detection (default /sys/class/dmi/id)
  CLOUD_NETWORK_LOG_LEVEL, CLOUD_NETWORK_LOG_FORMAT   override the config file

EXIT STATUS
  0 success; 1 runtime failure (metadata, ip, another instance); 2 usage or config error; 3 no supported cloud

See cloud-network(8) and cnctl(1).
`;

/** Exits once stdout and stderr are written out: a slow reader of a long --dry-run must get all of it. */
function exitAfterFlush(code: number): void {
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}

const command = defineCommand({
  meta: { name: 'cloud-network', version: VERSION, description: 'Configures cloud-assigned addresses and policy routing from instance metadata' },
  args,
  async run({ args: parsed }) {
    const checked = checkArguments(parsed);
    if (typeof checked === 'string') {
      process.stderr.write(`error: ${checked}; see cloud-network --help\n`);
      return exitAfterFlush(EXIT.usage);
    }
    exitAfterFlush(await main(checked));
  },
});

void runMain(command, { showUsage: (cmd, parent) => printUsage(cmd, parent, HELP_FOOTER) });
