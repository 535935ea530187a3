// Minimal HTTP client for tests: exact control of methods and headers (fetch adds and forbids
// some), Unix sockets for the mock's control API, and a timeout that reports a hang clearly.
import { request } from 'node:http';

export interface HttpRequest {
  /** http://host:port/path?query, or a path when socketPath is given. */
  url: string;
  socketPath?: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  /** Reject after this many ms (default 5000). */
  timeoutMs?: number;
  /** Aborts the request. */
  signal?: AbortSignal;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export class HttpTimeoutError extends Error {}

export function httpRequest(r: HttpRequest): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const target = r.socketPath ? new URL(r.url, 'http://localhost') : new URL(r.url);
    const req = request(
      {
        ...(r.socketPath ? { socketPath: r.socketPath } : { host: target.hostname, port: target.port }),
        method: r.method ?? 'GET',
        path: `${target.pathname}${target.search}`,
        headers: { ...(r.body !== undefined ? { 'Content-Type': 'application/json' } : {}), ...r.headers },
        agent: false,
        signal: r.signal,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') });
        });
        res.on('error', (e) => {
          clearTimeout(timer);
          reject(e);
        });
      },
    );
    const ms = r.timeoutMs ?? 5000;
    const timer = setTimeout(() => req.destroy(new HttpTimeoutError(`${r.method ?? 'GET'} ${r.url}: no answer within ${ms} ms`)), ms);
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.end(r.body);
  });
}
