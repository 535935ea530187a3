// The long-running mode (SPEC §2, issue 3). Reconciles at start, on every RefreshTimer tick,
// after kernel events (kernel-only: no metadata request) and when a new interface appears
// (hot-plug: metadata refresh, retried until the cloud lists it). Reconciles never overlap.
import type { Server } from 'node:http';
import { createApi, isLoopbackHost, listen, statusDocument } from './api.js';
import type { LoadedConfig } from './config.js';
import { ConfigError, loadConfig, configPathFrom, matchesAny } from './config.js';
import { EXIT, ExitError, liveSource } from './context.js';
import { acquireLock } from './lock.js';
import { setLogLevel, type Logger } from './log.js';
import type { InstanceMetadata } from './model.js';
import { KernelMonitor, type KernelEvent } from './monitor.js';
import { SystemdNotifier } from './notify.js';
import type { Plan } from './plan.js';
import { planLive, reconcile, recordDocuments, recordFailure } from './reconcile.js';
import { prepareStateDir, readState, stateDirFrom } from './state.js';

export interface DaemonOptions {
  configFlag?: string;
  providerFlag?: string;
}

/** Kernel events arrive in bursts (a networkd flush is dozens of lines): wait for the burst to end. */
const DEBOUNCE_MS = 200;
/** EC2 display documents are re-read on every n-th refresh, or when the set of MACs changes. */
const DOCUMENT_REFRESH_EVERY = 12;
const FAILURE_RETRY_MIN_MS = 2_000;
const HOTPLUG_DEADLINE_MS = 60_000;
const HOTPLUG_RETRY_MIN_MS = 1_000;
const HOTPLUG_RETRY_MAX_MS = 15_000;
/** Longest a reconcile may take before the watchdog stops being fed. */
const STUCK_AFTER_MS = 60_000;

/** What a cycle must do: re-read the metadata (and the EC2 documents), or only re-check the kernel. */
type Work = { metadata: boolean; documents: boolean; kernel: boolean };

export async function runDaemon(options: DaemonOptions, loaded: LoadedConfig, log: Logger): Promise<number> {
  let config = loaded.config;
  const source = liveSource(options.providerFlag, process.env);
  const stateDir = stateDirFrom(process.env);
  prepareStateDir(stateDir);
  const releaseLock = acquireLock(stateDir);
  const notifier = new SystemdNotifier(log);

  let lastGood: InstanceMetadata | undefined;
  let lastPlan: Plan | undefined;
  /** When lastGood was read, and why the latest read failed if it did. */
  let metadataReadAt = '';
  let metadataError: string | undefined;
  let refreshCount = 0;
  let failureStreak = 0;
  /** The last reconcile's error while reconciles keep failing with it. */
  let reconcileError: string | undefined;
  let busySince: number | undefined;
  let stopping = false;
  const pending: Work = { metadata: true, documents: true, kernel: false };
  let debounce: NodeJS.Timeout | undefined;
  let refreshTimer: NodeJS.Timeout | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  /** MACs seen on new links that the metadata did not list yet, with the time they appeared. */
  const hotplug = new Map<string, number>();
  const givenUp = new Set<string>();
  /** Link names the last reconcile saw, to tell a new link from a change of a known one. */
  let knownLinks = new Set<string>();

  const knownMacs = () => new Set([...(lastGood?.interfaces ?? []).map((nic) => nic.mac)]);

  async function fetchMetadata(documents: boolean): Promise<void> {
    const previousMacs = knownMacs();
    const metadata = await source.client.fetchMetadata({ documents });
    // EC2 reads its display documents separately: keep the last ones until they are re-read.
    const reuseDocuments = !documents && metadata.provider === 'ec2' && lastGood !== undefined;
    lastGood = reuseDocuments ? { ...metadata, documents: lastGood!.documents } : metadata;
    if (reuseDocuments && metadata.interfaces.some((nic) => !previousMacs.has(nic.mac))) {
      pending.metadata = pending.documents = true; // a new interface needs its documents
    }
  }

  async function cycle(work: Work): Promise<void> {
    if (work.metadata) {
      try {
        await fetchMetadata(work.documents || !lastGood || refreshCount % DOCUMENT_REFRESH_EVERY === 0);
        refreshCount++;
        metadataReadAt = new Date().toISOString();
        metadataError = undefined;
        if (failureStreak > 0) log.info(`metadata service answers again after ${failureStreak} failed attempt(s)`);
        failureStreak = 0;
      } catch (error) {
        failureStreak++;
        metadataError = (error as Error).message;
        // One line per streak, not one per retry: a long outage must not flood the journal.
        if (failureStreak === 1) log.error(`${(error as Error).message}; keeping the current configuration and retrying`);
        else log.debug((error as Error).message);
        // With metadata to work on, the reconcile below records the error; without, nothing else will.
        if (!lastGood) recordFailure(stateDir, (error as Error).message);
        const delay = Math.min(FAILURE_RETRY_MIN_MS * 2 ** (failureStreak - 1), config.refreshSeconds * 1000);
        clearTimeout(retryTimer);
        retryTimer = setTimeout(() => request({ metadata: true }, 0), delay);
      }
    }
    if (!lastGood) return;
    try {
      const result = await reconcile(lastGood, config, stateDir, log, { readAt: metadataReadAt, staleBecause: metadataError });
      if (!lastPlan || result.plan.changes.length > 0) {
        log.info(`${source.provider}: ${result.plan.managed.length} interface(s) managed, ${result.plan.changes.length - result.failures.length} change(s) applied`);
      }
      lastPlan = result.plan;
      knownLinks = new Set(result.kernel.links.map((link) => link.name));
      if (work.metadata && failureStreak === 0) recordDocuments(lastGood, result.plan, stateDir);
      if (reconcileError !== undefined) log.info('reconcile works again');
      reconcileError = undefined;
    } catch (error) {
      const message = (error as Error).message;
      // Once per distinct failure: a missing capability would otherwise repeat at every refresh.
      if (message !== reconcileError) log.error(`reconcile failed: ${message}`);
      reconcileError = message;
      recordFailure(stateDir, message);
    }
    checkHotplug();
  }

  /**
   * Re-reads the network metadata while a new link's MAC is not listed (or not readable) yet,
   * backing off for up to a minute. A MAC given up on is not chased again: a
   * container's veth or a bridge is never going to be in the metadata.
   */
  function checkHotplug(): void {
    const listed = knownMacs();
    for (const mac of givenUp) if (listed.has(mac)) givenUp.delete(mac); // chase it again if it ever leaves
    for (const [mac, since] of hotplug) {
      if (listed.has(mac)) {
        log.info(`new interface ${mac} is in the metadata now`);
        hotplug.delete(mac);
      } else if (Date.now() - since > HOTPLUG_DEADLINE_MS) {
        log.info(`new interface ${mac} is not in the metadata after ${HOTPLUG_DEADLINE_MS / 1000} s; the regular refresh will pick it up if it ever is`);
        hotplug.delete(mac);
        givenUp.add(mac);
      }
    }
    if (hotplug.size > 0) {
      // The wait grows with the age of the oldest new link: about 1, 2, 4, 8 s, then every 15 s.
      const age = Date.now() - Math.min(...hotplug.values());
      clearTimeout(retryTimer);
      retryTimer = setTimeout(() => request({ metadata: true }, 0), Math.min(Math.max(HOTPLUG_RETRY_MIN_MS, age), HOTPLUG_RETRY_MAX_MS));
    }
  }

  let running: Promise<void> | undefined;
  /** Queues work; a cycle already running picks it up when it ends, so cycles never overlap. */
  function request(work: Partial<Work>, delayMs: number): void {
    if (stopping) return;
    pending.metadata ||= work.metadata ?? false;
    pending.documents ||= work.documents ?? false;
    pending.kernel ||= work.kernel ?? false;
    clearTimeout(debounce);
    debounce = setTimeout(drain, delayMs);
  }

  function drain(): void {
    if (running || stopping) return;
    running = (async () => {
      while (!stopping && (pending.metadata || pending.kernel)) {
        const work = { ...pending };
        pending.metadata = pending.documents = pending.kernel = false;
        busySince = Date.now();
        await cycle(work);
        busySince = undefined;
      }
    })().finally(() => {
      running = undefined;
    });
  }

  function onKernelEvent(event: KernelEvent): void {
    if (!lastGood) return;
    const managedNames = new Set((lastPlan?.managed ?? []).map((nic) => nic.link.name));
    if (event.kind === 'link') {
      const appeared = !event.deleted && !event.hasMaster && !knownLinks.has(event.name);
      // An Unmanaged name (docker*, veth*) is never configured: its arrival is no reason to ask the metadata service.
      const unmanaged = matchesAny(event.name, config.unmanaged);
      if (appeared && !unmanaged && event.mac && !knownMacs().has(event.mac) && !givenUp.has(event.mac) && !hotplug.has(event.mac)) {
        log.info(`new interface ${event.name} (${event.mac}): reading the metadata`);
        hotplug.set(event.mac, Date.now());
        return request({ metadata: true }, DEBOUNCE_MS);
      }
      if (!managedNames.has(event.name) && !(event.mac && knownMacs().has(event.mac))) return;
    } else if (event.kind === 'address') {
      if (!event.deleted || !managedNames.has(event.name)) return;
    } else if (!event.deleted || !event.ours) {
      return;
    }
    request({ kernel: true }, DEBOUNCE_MS);
  }

  const monitor = new KernelMonitor(onKernelEvent, (message) => {
    log.warn(message);
    // Events may have been missed while the monitor was down: check the kernel once.
    request({ kernel: true }, DEBOUNCE_MS);
  });

  function scheduleRefresh(): void {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => {
      request({ metadata: true }, 0);
      scheduleRefresh();
    }, config.refreshSeconds * 1000);
  }

  async function watchGcp(): Promise<void> {
    const waitForChange = source.client.waitForChange?.bind(source.client);
    if (!waitForChange) return;
    let failures = 0;
    while (!stopping) {
      try {
        const metadata = await waitForChange();
        if (stopping) return;
        failures = 0;
        lastGood = metadata;
        metadataReadAt = new Date().toISOString();
        metadataError = undefined;
        log.info('metadata changed (wait_for_change)');
        request({ kernel: true }, 0);
      } catch (error) {
        failures++;
        if (failures === 1) log.warn(`waiting for metadata changes failed: ${(error as Error).message}; the refresh timer still runs`);
        await new Promise((resolve) => setTimeout(resolve, Math.min(FAILURE_RETRY_MIN_MS * 2 ** failures, 60_000)));
      }
    }
  }

  const status = () => statusDocument(source.provider, lastPlan, readState(stateDir));
  const api = createApi({
    metadata: () => lastGood,
    status,
    plan: async () => (lastGood ? planLive(lastGood, config, stateDir) : undefined),
  });
  // Signal handlers come first: a signal during the first reconcile must not kill the process mid-apply.
  let server: Server | undefined;
  let resolveStopped: (code: number) => void = () => undefined;
  const stopped = new Promise<number>((resolve) => (resolveStopped = resolve));
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`${signal}: stopping; the network configuration stays in place`);
    // Awaited (briefly): the notification must leave before the process does.
    const told = notifier.send('STOPPING=1');
    await Promise.race([told, new Promise((resolve) => setTimeout(resolve, 1_000).unref())]);
    for (const timer of [debounce, refreshTimer, retryTimer]) clearTimeout(timer);
    monitor.stop();
    notifier.stop();
    server?.closeAllConnections();
    server?.close();
    source.transport.close();
    // A reconcile in flight is one short ip process: let it finish so state.json matches the kernel.
    await running;
    releaseLock();
    resolveStopped(EXIT.ok);
  };
  // 'on', not 'once': execa's exit cleanup re-raises a signal that has no other listener left.
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGHUP', () => {
    const { path, explicit } = configPathFrom(options.configFlag, process.env);
    try {
      const reloaded = loadConfig(path, explicit, process.env);
      // At start a bad value falls back to its default; on a reload that could suddenly manage an
      // interface the admin had excluded, so a file with errors is not applied at all.
      const errors = reloaded.problems.filter((problem) => problem.severity === 'error');
      if (errors.length > 0) {
        log.error(`SIGHUP: the config file has invalid values (${errors.map((problem) => problem.message).join('; ')}); keeping the current configuration`);
        return;
      }
      for (const problem of reloaded.problems) log.warn(`config: ${problem.message}`);
      config = reloaded.config;
      setLogLevel(log, config.logLevel);
      log.info('SIGHUP: configuration reloaded (LogFormat and the API address take effect at the next restart)');
      scheduleRefresh();
      request({ metadata: true, documents: true }, 0);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      log.error(`SIGHUP: ${error.message}; keeping the current configuration`);
    }
  });

  try {
    server = await listen(api, config.listenHost, config.listenPort);
  } catch (error) {
    releaseLock();
    source.transport.close();
    throw new ExitError(`${(error as Error).message}; is another cloud-network running? Set Listen= in the config to move the API`, EXIT.runtime);
  }
  if (!isLoopbackHost(config.listenHost)) {
    log.warn(`the API listens on ${config.listenHost}, reachable from the network: it serves SSH keys and the instance identity`);
  }
  log.info(`${source.provider}: API on http://${config.listenHost}:${config.listenPort}, refresh every ${config.refreshSeconds} s`);

  monitor.start();
  drain(); // the first cycle: pending starts as a full metadata read
  await running;
  if (!stopping) {
    void notifier.send('READY=1', `STATUS=${lastGood ? 'configured' : 'waiting for the metadata service'}`);
    notifier.startWatchdog(() => busySince === undefined || Date.now() - busySince < STUCK_AFTER_MS);
    scheduleRefresh();
    void watchGcp();
  }
  return stopped;
}
