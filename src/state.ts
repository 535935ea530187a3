// The state directory (SPEC §6). state.json is the only record of which addresses this
// program added: without it an address is never ours to remove. Files are written
// atomically (temp file + rename) so a crash leaves either the old or the new content.
import { mkdirSync, readFileSync, renameSync, writeFileSync, rmSync, readdirSync, chmodSync } from 'node:fs';
import { join, dirname } from 'node:path';

export const DEFAULT_STATE_DIR = '/run/cloud-network';
const FILE_MODE = 0o640;
const DIR_MODE = 0o750;

export interface OwnedInterface {
  /** Addresses this program added that are on the link, as "a.b.c.d/len". */
  addresses: string[];
  /** Routing table used for this interface, so its config is recognised even when its metadata is unreadable. */
  table?: number;
  /** Its subnet (CIDR), for the same reason: other tables keep their route to it. */
  subnet?: string;
}

export interface AppliedCounts {
  addresses: number;
  routes: number;
  rules: number;
}

export interface StateFile {
  version: 1;
  /** Keyed by normalized MAC. */
  owned: Record<string, OwnedInterface>;
  lastRefresh?: string;
  lastError?: string;
  /** Objects configured by cloud-network in the kernel after the last reconcile. */
  applied?: AppliedCounts;
}

export const EMPTY_STATE: StateFile = { version: 1, owned: {} };

export function stateDirFrom(env: NodeJS.ProcessEnv): string {
  return env.CLOUD_NETWORK_STATE_DIR || DEFAULT_STATE_DIR;
}

/** The state directory cannot be created or given its mode. */
export class StateDirError extends Error {}

export function prepareStateDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: DIR_MODE });
    chmodSync(dir, DIR_MODE);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'EPERM' || code === 'EACCES' ? 'it belongs to another user or is not writable' : code === 'ENOTDIR' || code === 'EEXIST' ? 'a file is in the way' : (error as Error).message;
    throw new StateDirError(`cannot prepare the state directory ${dir}: ${why}; run as root, or set CLOUD_NETWORK_STATE_DIR to a directory of your own`);
  }
}

export function writeAtomic(path: string, content: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: DIR_MODE });
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, content, { mode: FILE_MODE });
  renameSync(temp, path);
}

/**
 * Reads state.json. A missing file is an empty state. An unreadable one is an error; a corrupt
 * one is reported to `onProblem` and read as "nothing is ours", the only safe guess.
 */
export function readState(dir: string, onProblem: (message: string) => void = () => undefined): StateFile {
  let text: string;
  try {
    text = readFileSync(join(dir, 'state.json'), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return structuredClone(EMPTY_STATE);
    throw new Error(`cannot read ${join(dir, 'state.json')}: ${(error as Error).message}`);
  }
  try {
    const parsed = JSON.parse(text) as StateFile;
    if (parsed.version !== 1 || typeof parsed.owned !== 'object' || parsed.owned === null) throw new Error('unknown format');
    return parsed;
  } catch (error) {
    onProblem(`${join(dir, 'state.json')} is corrupt (${(error as Error).message}); no address counts as added by cloud-network until it is rewritten`);
    return structuredClone(EMPTY_STATE);
  }
}

export function writeState(dir: string, state: StateFile): void {
  writeAtomic(join(dir, 'state.json'), `${JSON.stringify(state, null, 2)}\n`);
}

const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;

/** The provider documents of SPEC §6, replacing the previous set of links/ files. */
export function writeDocuments(
  dir: string,
  system: unknown,
  links: Map<number, unknown>,
  identity: Record<string, string> | undefined,
): void {
  writeAtomic(join(dir, 'system'), json(system));
  const linksDir = join(dir, 'links');
  mkdirSync(linksDir, { recursive: true, mode: DIR_MODE });
  for (const name of readdirSync(linksDir)) {
    if (!links.has(Number(name))) rmSync(join(linksDir, name), { force: true });
  }
  for (const [ifindex, document] of links) writeAtomic(join(linksDir, String(ifindex)), json(document));
  for (const [name, body] of Object.entries(identity ?? {})) {
    writeAtomic(join(dir, 'provider', 'ec2', name), body);
  }
}
