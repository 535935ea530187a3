// One reconcile: kernel state + metadata -> plan -> apply -> re-read -> record ownership.
// Used by --once, --dry-run and every daemon cycle; it never fetches metadata itself.
import { applyScript, type LineFailure } from './apply.js';
import type { Config } from './config.js';
import { IpError } from './ip.js';
import { CLOUD_NETWORK_PROTO, readKernelState, type KernelState } from './kernel.js';
import type { Logger } from './log.js';
import type { InstanceMetadata } from './model.js';
import { cidrText } from './net.js';
import { plan as makePlan, type Change, type Plan } from './plan.js';
import { renderChange } from './render.js';
import { readState, writeDocuments, writeState, type AppliedCounts, type StateFile } from './state.js';

export interface ReconcileResult {
  plan: Plan;
  /** The kernel after the apply. */
  kernel: KernelState;
  script: string;
  failures: LineFailure[];
  applied: AppliedCounts;
}

/**
 * Owned addresses once `changes` are made. Written before the apply, so that a crash in the
 * middle loses no ownership. An interface's primary address is put back when it goes missing but
 * never becomes ours: on the first interface it is DHCP's, the way into the machine, and a bad
 * metadata answer that leaves it out must not be able to delete it.
 */
function withAdditions(owned: StateFile['owned'], changes: Change[]): StateFile['owned'] {
  const result = structuredClone(owned);
  for (const change of changes) {
    if (change.kind !== 'address-add' || !change.address.noprefixroute) continue;
    const entry = (result[change.mac] ??= { addresses: [] });
    if (!entry.addresses.includes(change.address.cidr)) entry.addresses.push(change.address.cidr);
  }
  return result;
}

/**
 * Ownership after an apply: what we owned or just added, limited to what the kernel really has.
 * An addition that failed is not ours even if the address is there: another tool won the race.
 */
export function recordOwnership(previous: StateFile, plan: Plan, kernel: KernelState, failures: LineFailure[] = []): StateFile['owned'] {
  const failed = new Set(failures.map((failure) => failure.line));
  const made = failed.size === 0 ? plan.changes : plan.changes.filter((change) => !failed.has(renderChange(change)));
  const claimed = withAdditions(previous.owned, made);
  const owned: StateFile['owned'] = {};
  const macs = new Set([...Object.keys(claimed), ...plan.managed.map((nic) => nic.metadata.mac)]);
  for (const mac of macs) {
    const link = kernel.links.find((candidate) => candidate.mac === mac && candidate.master === undefined);
    if (!link) continue; // the interface is gone, and its addresses with it
    const onLink = new Set(kernel.addresses.filter((a) => a.ifindex === link.index).map((a) => `${a.address}/${a.prefixLength}`));
    const addresses = (claimed[mac]?.addresses ?? []).filter((cidr) => onLink.has(cidr));
    const nic = plan.managed.find((candidate) => candidate.metadata.mac === mac);
    const table = nic?.table ?? previous.owned[mac]?.table;
    const subnet = nic ? cidrText(nic.metadata.subnet) : previous.owned[mac]?.subnet;
    if (addresses.length > 0 || table !== undefined) {
      owned[mac] = { addresses, ...(table === undefined ? {} : { table }), ...(subnet === undefined ? {} : { subnet }) };
    }
  }
  return owned;
}

function countApplied(owned: StateFile['owned'], kernel: KernelState): AppliedCounts {
  return {
    addresses: Object.values(owned).reduce((sum, entry) => sum + entry.addresses.length, 0),
    routes: kernel.routes.filter((route) => route.protocol === CLOUD_NETWORK_PROTO).length,
    rules: kernel.rules.filter((rule) => rule.protocol === CLOUD_NETWORK_PROTO).length,
  };
}

/** Plans against the live kernel and prints nothing, writes nothing: for --dry-run and the API. */
export async function planLive(metadata: InstanceMetadata, config: Config, stateDir: string): Promise<Plan> {
  return makePlan(metadata, await readKernelState(), config, readState(stateDir));
}

/** How fresh the metadata of a reconcile is, for state.json. */
export interface Freshness {
  /** When the metadata was last read successfully (ISO time). */
  readAt: string;
  /** Why the latest read failed, when the metadata in use is older than that attempt. */
  staleBecause?: string;
}

export async function reconcile(
  metadata: InstanceMetadata,
  config: Config,
  stateDir: string,
  log: Logger,
  freshness: Freshness,
): Promise<ReconcileResult> {
  const state = readState(stateDir, (problem) => log.warn(problem));
  const before = await readKernelState();
  const plan = makePlan(metadata, before, config, state);
  for (const notice of plan.notices) log.warn(notice);
  // Rendered once: the same lines are the script, the log and the key to ip's failures.
  const lines = plan.changes.map(renderChange);
  const script = lines.map((line) => `${line}\n`).join('');
  if (plan.changes.some((change) => change.kind === 'address-add')) {
    writeState(stateDir, { ...state, owned: withAdditions(state.owned, plan.changes) });
  }
  let failures: LineFailure[];
  try {
    failures = await applyScript(script);
    if (failures.length === plan.changes.length && failures.length > 0 && failures.every((f) => /Operation not permitted/.test(f.error))) {
      throw new IpError(
        `ip was not permitted to change the network: cloud-network needs CAP_NET_ADMIN (run it as root, or with AmbientCapabilities=CAP_NET_ADMIN); nothing was changed`,
      );
    }
  } catch (error) {
    // Nothing was applied: the claims written ahead must not outlive this attempt.
    writeState(stateDir, state);
    throw error;
  }
  const failedLines = new Set(failures.map((failure) => failure.line));
  for (const line of lines) if (!failedLines.has(line)) log.info(`applied: ${line}`);
  for (const failure of failures) log.error(`ip could not apply "${failure.line}": ${failure.error}`);
  // Re-read only when something was written: an unchanged system costs one ip process.
  const after = plan.changes.length > 0 ? await readKernelState() : before;
  const owned = recordOwnership(state, plan, after, failures);
  const applied = countApplied(owned, after);
  writeState(stateDir, {
    version: 1,
    owned,
    lastRefresh: freshness.readAt,
    ...(failures.length > 0
      ? { lastError: `${failures.length} change(s) failed, first: ${failures[0]!.line}: ${failures[0]!.error}` }
      : freshness.staleBecause
        ? { lastError: freshness.staleBecause }
        : {}),
    applied,
  });
  return { plan, kernel: after, script, failures, applied };
}

/** Writes the provider documents of SPEC §6 for the interfaces present on this machine. */
export function recordDocuments(metadata: InstanceMetadata, plan: Plan, stateDir: string): void {
  const links = new Map(plan.managed.map((nic) => [nic.link.index, metadata.documents.interfaces?.[nic.metadata.mac] ?? nic.metadata]));
  writeDocuments(stateDir, metadata.documents.system, links, metadata.documents.identity);
}

/** Notes a failed refresh in state.json without touching what it says we own. */
export function recordFailure(stateDir: string, message: string): void {
  writeState(stateDir, { ...readState(stateDir), lastError: message });
}
