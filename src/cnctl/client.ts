// The HTTP side of cnctl: which URL to ask, the request itself, and the one-line failures
// (daemon not running, API error, unusable answer) that cnctl prints instead of output.
import { get } from 'node:http';
import { ConfigError, configPathFrom, loadConfig } from '../config.js';
import { PROVIDERS, type ProviderName } from '../model.js';
import { asObject } from './json.js';

export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

/** A failure that cnctl reports as `error: MESSAGE` and leaves with exitCode. */
export class CnctlError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.failure,
  ) {
    super(message);
  }
}

/** The API is local: anything slower than this is a stuck daemon, not a slow network. */
const TIMEOUT_MS = 5000;

/** A daemon listening on every address is reached through loopback: a wildcard is no address to connect to. */
const WILDCARD_LISTEN: Record<string, string> = { '0.0.0.0': '127.0.0.1', '::': '::1' };

const REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'no such host',
  EAI_AGAIN: 'no such host',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ABORT_ERR: `no answer within ${TIMEOUT_MS / 1000} s`,
};

/** --url when given, else the daemon's own Listen (or Address and Port) from its config file. */
export function apiUrl(flag: string | undefined, env: NodeJS.ProcessEnv): URL {
  if (flag !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(flag);
    } catch {
      url = undefined;
    }
    if (url?.protocol !== 'http:') throw new CnctlError(`--url ${JSON.stringify(flag)} is not an http:// URL such as http://127.0.0.1:5209`, EXIT.usage);
    return url;
  }
  const { path, explicit } = configPathFrom(undefined, env);
  let config;
  try {
    config = loadConfig(path, explicit, env).config;
  } catch (error) {
    if (error instanceof ConfigError) throw new CnctlError(`${error.message}; give the API address with --url`, EXIT.usage);
    throw error;
  }
  const host = WILDCARD_LISTEN[config.listenHost] ?? config.listenHost;
  return new URL(`http://${host.includes(':') ? `[${host}]` : host}:${config.listenPort}/`);
}

export class ApiClient {
  private status?: Promise<unknown>;

  constructor(private readonly base: URL) {}

  /** The parsed JSON of a 200 answer; anything else becomes a CnctlError. */
  async get(path: string): Promise<unknown> {
    const { status, body } = await this.request(path);
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      throw new CnctlError(`cloud-network at ${this.base.host} answered ${path} with HTTP ${status} and no JSON; is it cloud-network?`);
    }
    if (status !== 200) {
      const message = asObject(parsed).error;
      throw new CnctlError(typeof message === 'string' ? message : `cloud-network answered ${path} with HTTP ${status}`);
    }
    return parsed;
  }

  /** /api/v1/status, asked once however many views need it. */
  daemonStatus(): Promise<unknown> {
    this.status ??= this.get('/api/v1/status');
    return this.status;
  }

  async provider(): Promise<ProviderName> {
    const provider = asObject(await this.daemonStatus()).provider;
    if (!PROVIDERS.includes(provider as ProviderName)) throw new CnctlError(`cloud-network reports an unknown provider ${JSON.stringify(provider)}`);
    return provider as ProviderName;
  }

  private request(path: string): Promise<{ status: number; body: string }> {
    const url = new URL(path, this.base);
    // The API accepts only a loopback Host (its DNS-rebinding guard). cnctl always talks to its own
    // machine, so it says localhost whatever address it connects to (a Listen of 10.0.0.5 included).
    const host = `localhost:${url.port || 80}`;
    return new Promise((resolve, reject) => {
      const request = get(url, { headers: { host, accept: 'application/json' }, agent: false, signal: AbortSignal.timeout(TIMEOUT_MS) }, (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
        response.on('error', (error) => reject(this.unreachable(error)));
      });
      request.on('error', (error) => reject(this.unreachable(error)));
    });
  }

  private unreachable(error: NodeJS.ErrnoException): CnctlError {
    const reason = REASONS[error.code ?? ''] ?? error.code ?? error.message;
    return new CnctlError(`cannot reach cloud-network at ${this.base.host}: ${reason}; is the service running? systemctl status cloud-network`);
  }
}
