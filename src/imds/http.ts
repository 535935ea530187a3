// HTTP for metadata services. node:http never consults proxy variables, which is what we
// want: IMDS is link-local and a proxy would answer for the wrong machine. Every request
// has a connect timeout, a total timeout and a body size limit; retries back off with jitter.
import http from 'node:http';

export interface HttpRequest {
  method: 'GET' | 'PUT';
  /** Path and query, e.g. "/latest/meta-data/mac". */
  path: string;
  headers?: Record<string, string>;
  /** Overrides the total timeout, for long polls that are meant to hang. */
  timeoutMs?: number;
}

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** Something that answers metadata requests: real HTTP, or a recorded fixture. */
export interface Transport {
  /** Human-readable base, for messages. */
  readonly base: string;
  request(request: HttpRequest): Promise<HttpResponse>;
}

export class ImdsError extends Error {}

export const CONNECT_TIMEOUT_MS = 2000;
export const TOTAL_TIMEOUT_MS = 5000;
export const MAX_BODY_BYTES = 4 * 1024 * 1024;

/** The response did not come (network error, timeout, oversized body): worth a retry. */
class TransientError extends Error {}

export class HttpTransport implements Transport {
  private readonly url: URL;
  // Keep-alive lets the parallel per-MAC requests reuse a few connections.
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 8, timeout: 30_000 });

  constructor(readonly base: string) {
    this.url = new URL(base);
    if (this.url.protocol !== 'http:') throw new ImdsError(`metadata endpoint ${base} must be an http:// URL`);
  }

  request(request: HttpRequest): Promise<HttpResponse> {
    return new Promise((resolve, reject) => {
      const req = http.request({
        host: this.url.hostname.replace(/^\[|\]$/g, ''),
        port: this.url.port || 80,
        method: request.method,
        path: this.url.pathname.replace(/\/$/, '') + request.path,
        headers: { ...request.headers, 'User-Agent': 'cloud-network' },
        agent: this.agent,
      });
      const fail = (message: string) => {
        clearTimeout(total);
        req.destroy();
        reject(new TransientError(message));
      };
      const timeoutMs = request.timeoutMs ?? TOTAL_TIMEOUT_MS;
      const total = setTimeout(() => fail(`no complete answer within ${timeoutMs / 1000} s`), timeoutMs);
      req.on('socket', (socket) => {
        if (!socket.connecting) return;
        const connect = setTimeout(() => fail(`cannot connect within ${CONNECT_TIMEOUT_MS / 1000} s`), CONNECT_TIMEOUT_MS);
        socket.once('connect', () => clearTimeout(connect));
        socket.once('close', () => clearTimeout(connect));
      });
      req.on('error', (error: NodeJS.ErrnoException) => fail(error.code === 'ECONNREFUSED' ? 'connection refused' : error.message));
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BODY_BYTES) fail(`answer larger than ${MAX_BODY_BYTES / 1024 / 1024} MiB`);
          else chunks.push(chunk);
        });
        res.on('error', (error) => fail(error.message));
        res.on('aborted', () => fail('answer cut off'));
        res.on('end', () => {
          clearTimeout(total);
          if (!res.complete) return fail('answer cut off');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') });
        });
      });
      req.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

export interface RetryPolicy {
  attempts: number;
  /** Status codes that mean "try again later" for this service. */
  retryStatuses: number[];
}

const BACKOFF_BASE_MS = 200;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Sends a request, retrying transient failures and `retryStatuses` with exponential backoff and
 * full jitter. Returns the last response for any other status; throws ImdsError when no answer came.
 */
export async function requestWithRetry(transport: Transport, request: HttpRequest, policy: RetryPolicy): Promise<HttpResponse> {
  let lastProblem = '';
  for (let attempt = 1; attempt <= policy.attempts; attempt++) {
    if (attempt > 1) await sleep(Math.random() * BACKOFF_BASE_MS * 2 ** (attempt - 1));
    try {
      const response = await transport.request(request);
      if (!policy.retryStatuses.includes(response.status)) return response;
      lastProblem = `HTTP ${response.status}`;
    } catch (error) {
      if (!(error instanceof TransientError)) throw error;
      lastProblem = error.message;
    }
  }
  throw new ImdsError(
    `metadata request ${request.method} ${transport.base}${request.path} failed: ${lastProblem} (after ${policy.attempts} attempts)`,
  );
}

/** Runs `work` over `items` with at most `limit` in flight, keeping result order. */
export async function mapBounded<T, R>(items: T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
