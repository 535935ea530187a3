// Configuration file (SPEC §3). Parsed with smol-toml; every key validated on its own so a
// bad value costs only that key (it falls back to its default) and names itself in the message.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { parse, TomlError } from 'smol-toml';

export const DEFAULT_CONFIG_PATH = '/etc/cloud-network/cloud-network.toml';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warning', 'error', 'fatal', 'panic'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogFormat = 'text' | 'json';
export type PolicyRoutingMode = 'auto' | 'yes' | 'no';

export interface Config {
  logLevel: LogLevel;
  logFormat: LogFormat;
  refreshSeconds: number;
  listenHost: string;
  listenPort: number;
  supplementary: string[];
  policyRouting: PolicyRoutingMode;
  unmanaged: string[];
  routeTableBase: number;
}

export const DEFAULT_CONFIG: Config = {
  logLevel: 'info',
  logFormat: 'text',
  refreshSeconds: 300,
  listenHost: '127.0.0.1',
  listenPort: 5209,
  supplementary: [],
  policyRouting: 'auto',
  unmanaged: [],
  routeTableBase: 10000,
};

export interface ConfigProblem {
  /** An error is a bad value: at start its key falls back to the default; a reload refuses the file. */
  severity: 'warning' | 'error';
  message: string;
}

export interface LoadedConfig {
  config: Config;
  problems: ConfigProblem[];
  /** The file that was read, or undefined when the default file is absent. */
  path?: string;
}

/** A config that cannot be used at all (missing explicit file, unreadable, TOML syntax error). */
export class ConfigError extends Error {}

type Section = Record<string, unknown>;
type KeyParser = (value: unknown, config: Config) => string | undefined;

const MIN_REFRESH_SECONDS = 5;
/** A day: longer would also overflow Node's 32-bit timers (24.8 days), which then fire at once. */
const MAX_REFRESH_SECONDS = 86_400;
// Keeps every rule priority (base + 10000 + n) below the main table's 32766.
const TABLE_BASE_RANGE = [256, 20000] as const;

/** Go-style duration ("300s", "5m", "1h30m", "1.5h", "500ms") in seconds; undefined if invalid. */
export function parseDuration(text: string): number | undefined {
  const units: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600 };
  const trimmed = text.trim();
  if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(trimmed)) return undefined;
  let seconds = 0;
  for (const [, amount, , unit] of trimmed.matchAll(/(\d+(\.\d+)?)(ms|s|m|h)/g)) {
    seconds += Number(amount) * units[unit!]!;
  }
  return seconds;
}

function parsePort(value: unknown): number | undefined {
  const text = typeof value === 'number' ? String(value) : typeof value === 'string' ? value.trim() : '';
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : undefined;
}

/** "host:port" or "[v6]:port". */
function parseListen(value: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(value.trim());
  if (!match) return undefined;
  const port = parsePort(match[3]);
  return port === undefined ? undefined : { host: (match[1] ?? match[2])!, port };
}

// Whitespace-separated per SPEC; commas are accepted too, since "eth1, eth2" is an easy slip.
const names = (value: unknown): string[] | undefined =>
  typeof value === 'string' ? value.split(/[\s,]+/).filter((name) => name !== '') : undefined;

const show = (value: unknown): string => JSON.stringify(value);

const SYSTEM_KEYS: Record<string, KeyParser> = {
  LogLevel(value, config) {
    const level = typeof value === 'string' ? value.toLowerCase() : '';
    if (!(LOG_LEVELS as readonly string[]).includes(level)) {
      return `must be one of ${LOG_LEVELS.join('|')}, got ${show(value)}`;
    }
    config.logLevel = level as LogLevel;
  },
  LogFormat(value, config) {
    const format = typeof value === 'string' ? value.toLowerCase() : '';
    if (format !== 'text' && format !== 'json') return `must be text or json, got ${show(value)}`;
    config.logFormat = format;
  },
  RefreshTimer(value, config) {
    const seconds = typeof value === 'string' ? parseDuration(value) : undefined;
    if (seconds === undefined) return `must be a duration such as 300s, 5m or 1h30m, got ${show(value)}`;
    if (seconds < MIN_REFRESH_SECONDS) return `must be at least ${MIN_REFRESH_SECONDS}s, got ${show(value)}`;
    if (seconds > MAX_REFRESH_SECONDS) return `must be at most 24h, got ${show(value)}`;
    config.refreshSeconds = seconds;
  },
};

const NETWORK_KEYS: Record<string, KeyParser> = {
  Address(value, config) {
    const host = typeof value === 'string' ? value.trim() : '';
    if (host !== 'localhost' && !isIP(host)) return `must be an IP address or localhost, got ${show(value)}`;
    config.listenHost = host;
  },
  Port(value, config) {
    const port = parsePort(value);
    if (port === undefined) return `must be a port number 1-65535, got ${show(value)}`;
    config.listenPort = port;
  },
  Listen(value, config) {
    const listen = typeof value === 'string' ? parseListen(value) : undefined;
    if (!listen || (listen.host !== 'localhost' && !isIP(listen.host))) return `must be HOST:PORT such as 127.0.0.1:5209, got ${show(value)}`;
    config.listenHost = listen.host;
    config.listenPort = listen.port;
  },
  Supplementary(value, config) {
    const list = names(value);
    if (!list) return `must be a string of interface names, got ${show(value)}`;
    config.supplementary = list;
  },
  PolicyRouting(value, config) {
    const mode = typeof value === 'string' ? value.toLowerCase() : typeof value === 'boolean' ? (value ? 'yes' : 'no') : '';
    if (mode !== 'auto' && mode !== 'yes' && mode !== 'no') return `must be auto, yes or no, got ${show(value)}`;
    config.policyRouting = mode;
  },
  Unmanaged(value, config) {
    const list = names(value);
    if (!list) return `must be a string of interface names or globs, got ${show(value)}`;
    const broken = list.find((glob) => !globToRegExp(glob));
    if (broken !== undefined) return `has ${JSON.stringify(broken)}, which is not a valid glob (an unclosed [ ?), got ${show(value)}`;
    config.unmanaged = list;
  },
  RouteTableBase(value, config) {
    const base = typeof value === 'number' ? value : typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : NaN;
    if (!Number.isInteger(base) || base < TABLE_BASE_RANGE[0] || base > TABLE_BASE_RANGE[1]) {
      return `must be an integer from ${TABLE_BASE_RANGE[0]} to ${TABLE_BASE_RANGE[1]}, got ${show(value)}`;
    }
    config.routeTableBase = base;
  },
};

const SECTIONS: Record<string, Record<string, KeyParser>> = { System: SYSTEM_KEYS, Network: NETWORK_KEYS };

/** ", did you mean X?" when `name` differs from a known name only in case (keys are case-sensitive). */
function hint(name: string, known: string[], before: string, after: string): string {
  const match = known.find((candidate) => candidate.toLowerCase() === name.toLowerCase());
  return match ? `; did you mean ${before}${match}${after}?` : '';
}

/** Validates parsed TOML; never throws for bad values. */
export function buildConfig(document: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): LoadedConfig {
  const config: Config = { ...DEFAULT_CONFIG };
  const problems: ConfigProblem[] = [];
  const apply = (where: string, parser: KeyParser, value: unknown) => {
    const error = parser(value, config);
    if (error) problems.push({ severity: 'error', message: `${where} ${error}` });
  };
  for (const [sectionName, section] of Object.entries(document)) {
    const parsers = SECTIONS[sectionName];
    if (typeof section !== 'object' || section === null || Array.isArray(section)) {
      const home = Object.keys(SECTIONS).find((name) => SECTIONS[name]![sectionName]);
      problems.push({ severity: 'warning', message: `key ${sectionName} is outside any section and ignored${home ? `; put it under [${home}]` : ''}` });
      continue;
    }
    if (!parsers) {
      problems.push({ severity: 'warning', message: `unknown section [${sectionName}] ignored${hint(sectionName, Object.keys(SECTIONS), '[', ']')}` });
      continue;
    }
    // Listen wins over Address/Port, whatever the order in the file.
    const entries = Object.entries(section as Section).sort(([a], [b]) => Number(a === 'Listen') - Number(b === 'Listen'));
    for (const [key, value] of entries) {
      const parser = parsers[key];
      if (parser) apply(`${sectionName}.${key}`, parser, value);
      else problems.push({ severity: 'warning', message: `unknown key ${sectionName}.${key} ignored${hint(key, Object.keys(parsers), `${sectionName}.`, '')}` });
    }
  }
  if (env.CLOUD_NETWORK_LOG_LEVEL) apply('CLOUD_NETWORK_LOG_LEVEL', SYSTEM_KEYS.LogLevel!, env.CLOUD_NETWORK_LOG_LEVEL);
  if (env.CLOUD_NETWORK_LOG_FORMAT) apply('CLOUD_NETWORK_LOG_FORMAT', SYSTEM_KEYS.LogFormat!, env.CLOUD_NETWORK_LOG_FORMAT);
  return { config, problems };
}

/**
 * Reads the config file. `explicit` is false for the built-in default path, whose absence is
 * fine. Throws ConfigError only when the file cannot be used at all.
 */
export function loadConfig(path: string, explicit: boolean, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !explicit) return buildConfig({}, env);
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : (error as Error).message;
    throw new ConfigError(`cannot read config ${path}: ${why}`);
  }
  let document: Record<string, unknown>;
  try {
    document = parse(text);
  } catch (error) {
    if (error instanceof TomlError) {
      const reason = error.message.split('\n')[0]!.replace(/^Invalid TOML document: /, '');
      throw new ConfigError(`config ${path} line ${error.line}, column ${error.column}: ${reason}`);
    }
    throw error;
  }
  return { ...buildConfig(document, env), path };
}

export function configPathFrom(flag: string | undefined, env: NodeJS.ProcessEnv): { path: string; explicit: boolean } {
  const chosen = flag ?? env.CLOUD_NETWORK_CONFIG;
  return chosen ? { path: chosen, explicit: true } : { path: DEFAULT_CONFIG_PATH, explicit: false };
}

/** A shell-style glob (*, ?, [...]) as an anchored regular expression; undefined when malformed. */
function globToRegExp(glob: string): RegExp | undefined {
  const pattern = glob
    .replace(/[.+^${}()|\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.')
    // The shell's negated class [!...] is a regular expression's [^...].
    .replace(/\[!/g, '[^');
  try {
    return new RegExp(`^${pattern}$`);
  } catch {
    return undefined;
  }
}

/** Shell-style glob match of an interface name; the config parser has already refused malformed globs. */
export function matchesAny(name: string, globs: string[]): boolean {
  return globs.some((glob) => globToRegExp(glob)?.test(name) ?? false);
}
