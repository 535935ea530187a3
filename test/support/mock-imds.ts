// Mock instance metadata service for EC2, Azure and GCP.
//
// It serves a fixture (notes/CONTEXT.md format) over real HTTP and enforces each cloud's
// protocol as /work/shared/reference-imds/*/protocol.json describes it, so that the program's
// HTTP client is tested against the rules it must follow, not against a lenient stub.
// Faults (status codes, hangs, broken bodies, latency) can be injected at runtime.
//
// This module imports only node builtins: it is bundled by esbuild and run as its own process
// inside a network namespace (see mock-imds-main.ts and mock-imds-process.ts). It can also be
// used in-process via createMockImdsServer().
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Fixture, Provider } from './fixture.js';

// ---------------------------------------------------------------------------------------------
// Public types (shared with the control client)

export interface MockImdsOptions {
  ec2?: {
    /** Accept GET without a token (HttpTokens=optional). Default false: IMDSv2 required. */
    allowImdsV1?: boolean;
    /**
     * Make PUT /latest/api/token answer this status (404 or 405 simulate an IMDSv1-only
     * service, which then also accepts tokenless GETs; 403 simulates HttpEndpoint=disabled).
     * null/undefined: normal token endpoint.
     */
    tokenEndpointStatus?: number | null;
  };
  /** Request log entries kept (oldest dropped first). Default 10000. */
  maxLogEntries?: number;
}

/** What a fault does to a matching request. */
export type FaultAction =
  /** Answer this status (with the provider's error body, or `body`). */
  | { kind: 'status'; status: number; body?: string }
  /** Never send headers; the client must time out. */
  | { kind: 'hang' }
  /** Send the normal response, its body spread in 10 chunks over `ms`. */
  | { kind: 'slow'; ms: number }
  /** 200 with an HTML page instead of the data. */
  | { kind: 'html' }
  /** 200 with an empty body. */
  | { kind: 'empty' }
  /**
   * The first half of the normal body. Default: a complete HTTP response whose Content-Length
   * matches the half body. abort: announce the full length, send half, then reset the connection.
   */
  | { kind: 'truncate'; abort?: boolean }
  /** 200 with `megabytes` MiB of 'a' (chunked unless contentLength). */
  | { kind: 'huge'; megabytes: number; contentLength?: boolean }
  /** Destroy the connection without answering. */
  | { kind: 'close' }
  /** Delay the request by `ms` and go on (adds up with other matching latency faults). */
  | { kind: 'latency'; ms: number };

/** Which requests a fault applies to. Without path/pathRegex/method: every request. */
export interface FaultMatch {
  /** Exact URL pathname (no query). */
  path?: string;
  /** Regular expression source tested against the pathname. */
  pathRegex?: string;
  /** HTTP method (e.g. "PUT"). */
  method?: string;
  /** Apply to the next `count` matching requests, then remove itself. Default: until cleared. */
  count?: number;
}

export type Fault = FaultAction & FaultMatch;

export interface ActiveFault {
  id: number;
  fault: Fault;
  /** Remaining uses, null = unlimited. */
  remaining: number | null;
}

/** Change to the served metadata: paths set (string) or deleted (null); notFound replaced. */
export interface MetadataPatch {
  paths?: Record<string, string | null>;
  notFound?: string[];
}

export interface LogEntry {
  seq: number;
  /** Arrival time, ms since the epoch. */
  time: number;
  method: string;
  path: string;
  /** Raw query string without '?', '' when none. */
  query: string;
  /** Protocol-relevant request headers (lower-case names), when present. */
  headers: Record<string, string>;
  /** Status sent; null while pending or when no response was ever sent (hang, close). */
  status: number | null;
  /** Kind of the fault applied, if any. */
  fault?: FaultAction['kind'];
  /** Time to the end of the response (or the connection's end), ms. */
  durationMs?: number;
}

export interface MockImdsState {
  fixture: Fixture;
  options: MockImdsOptions;
  faults: ActiveFault[];
  liveTokens: number;
  clockOffsetMs: number;
  /** GCP wait_for_change requests currently waiting. */
  waiting: number;
}

// ---------------------------------------------------------------------------------------------
// Protocol constants (from reference-imds/*/protocol.json)

const EC2_TOKEN_PATH = '/latest/api/token';
const EC2_TTL_HEADER = 'x-aws-ec2-metadata-token-ttl-seconds';
const EC2_TOKEN_HEADER = 'x-aws-ec2-metadata-token';
const EC2_TTL_MAX = 21600;

function awsHtml(status: number, title: string): string {
  return (
    '<?xml version="1.0" encoding="iso-8859-1"?>\n' +
    '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"\n' +
    '\t"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n' +
    '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">\n' +
    ' <head>\n' +
    `  <title>${status} - ${title}</title>\n` +
    ' </head>\n' +
    ' <body>\n' +
    `  <h1>${status} - ${title}</h1>\n` +
    ' </body>\n' +
    '</html>\n'
  );
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  410: 'Gone',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

const AZURE_MISSING_HEADER = '{ "error": "Bad request: . Required metadata header not specified" }';
const AZURE_BAD_VERSION = JSON.stringify({
  error: 'Bad request. api-version is invalid or was not specified in the request. For more information refer to aka.ms/azureimds',
  'newest-versions': ['2025-04-07', '2024-07-17', '2024-03-15'],
});
const AZURE_VERSIONS = [
  '2017-03-01', '2017-04-02', '2017-08-01', '2017-10-01', '2017-12-01', '2018-02-01', '2018-04-02',
  '2018-10-01', '2019-02-01', '2019-03-11', '2019-04-30', '2019-06-01', '2019-06-04', '2019-08-01',
  '2019-08-15', '2019-11-01', '2020-06-01', '2020-07-15', '2020-09-01', '2020-10-01', '2020-12-01',
  '2021-01-01', '2021-02-01', '2021-03-01', '2021-05-01', '2021-08-01', '2021-10-01', '2021-11-01',
  '2021-11-15', '2021-12-13', '2023-07-01', '2023-11-15', '2024-03-15', '2024-07-17', '2025-04-07',
];

const GCP_ROOT = '/computeMetadata/v1/';
const GCP_HEADERS = { 'Metadata-Flavor': 'Google', Server: 'Metadata Server for VM' };

/** Header names copied into the request log. */
const LOGGED_HEADERS = [
  'host',
  'user-agent',
  'metadata',
  'metadata-flavor',
  'x-forwarded-for',
  EC2_TTL_HEADER,
  EC2_TOKEN_HEADER,
  'x-ms-client-request-id',
  'proxy-authorization',
  'connection',
];

const HTML_FAULT_BODY =
  '<!DOCTYPE html>\n<html><head><title>Captive portal</title></head>\n' +
  '<body><h1>Please sign in</h1><p>This network requires authentication.</p></body></html>\n';

// ---------------------------------------------------------------------------------------------
// Responses

interface Reply {
  status: number;
  headers?: Record<string, string>;
  body: string | Buffer;
}

function text(status: number, body: string, contentType = 'text/plain', headers: Record<string, string> = {}): Reply {
  return { status, headers: { 'Content-Type': contentType, ...headers }, body };
}

function etagOf(body: string): string {
  // Google's emulator: the last 16 hex digits of an MD5 of the body.
  return createHash('md5').update(body).digest('hex').slice(-16);
}

function camelCase(segment: string): string {
  return segment.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function kebabCase(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** Walks a JSON document by URL segments (exact key, then camelCase of a kebab segment). */
function walk(doc: unknown, segments: string[]): { found: boolean; value?: unknown } {
  let cur: unknown = doc;
  for (const seg of segments) {
    if (Array.isArray(cur)) {
      if (!/^\d+$/.test(seg) || Number(seg) >= cur.length) return { found: false };
      cur = cur[Number(seg)];
    } else if (cur !== null && typeof cur === 'object') {
      const obj = cur as Record<string, unknown>;
      const key = seg in obj ? seg : camelCase(seg);
      if (!(key in obj)) return { found: false };
      cur = obj[key];
    } else return { found: false };
  }
  return { found: true, value: cur };
}

function isContainer(v: unknown): boolean {
  return v !== null && typeof v === 'object';
}

// ---------------------------------------------------------------------------------------------
// The server

export interface MockImdsServer {
  readonly provider: Provider;
  /** Starts listening; resolves with the bound port. */
  listen(port?: number, host?: string): Promise<number>;
  /** Stops listening and drops every open connection (hanging requests included). */
  close(): Promise<void>;
  state(): MockImdsState;
  setFixture(fixture: Fixture): void;
  patch(patch: MetadataPatch): void;
  setOptions(options: MockImdsOptions): void;
  addFault(fault: Fault): number;
  removeFault(id: number): boolean;
  clearFaults(): void;
  log(sinceSeq?: number): LogEntry[];
  resetLog(): void;
  /** Invalidates every EC2 token handed out so far. */
  expireTokens(): void;
  /** Moves the mock's clock forward (token expiry), in seconds. */
  advanceClock(seconds: number): void;
  /** The raw node server, e.g. to attach it elsewhere. */
  readonly server: Server;
}

export function createMockImdsServer(initial: Fixture, initialOptions: MockImdsOptions = {}): MockImdsServer {
  let fixture: Fixture = structuredClone(initial);
  let options: MockImdsOptions = structuredClone(initialOptions);
  const provider = fixture.provider;
  const faults: ActiveFault[] = [];
  let nextFaultId = 1;
  let logEntries: LogEntry[] = [];
  let seq = 0;
  const tokens = new Map<string, number>(); // token -> expiry (mock clock, ms)
  let clockOffsetMs = 0;
  const waiters = new Set<() => void>(); // GCP wait_for_change, re-evaluated on every change
  const sockets = new Set<Socket>();

  const now = (): number => Date.now() + clockOffsetMs;

  function changed(): void {
    for (const w of [...waiters]) w();
  }

  // --- fixture lookups ---

  function fixtureBody(pathname: string): string | undefined {
    if (fixture.notFound?.includes(pathname)) return undefined;
    return fixture.paths[pathname];
  }

  // --- EC2 ---

  function ec2(req: IncomingMessage, pathname: string): Reply {
    const method = req.method ?? 'GET';
    const ec2opts = options.ec2 ?? {};
    const html = (status: number): Reply => text(status, awsHtml(status, REASONS[status] ?? 'Error'), 'text/html');
    if (pathname === EC2_TOKEN_PATH) {
      if (method !== 'PUT') return html(405);
      if (ec2opts.tokenEndpointStatus) return html(ec2opts.tokenEndpointStatus);
      if (req.headers['x-forwarded-for'] !== undefined) return html(403);
      const ttlText = req.headers[EC2_TTL_HEADER];
      const ttl = typeof ttlText === 'string' && /^\d+$/.test(ttlText.trim()) ? Number(ttlText.trim()) : NaN;
      if (!(ttl >= 1 && ttl <= EC2_TTL_MAX)) return html(400);
      const token = randomBytes(42).toString('base64url');
      tokens.set(token, now() + ttl * 1000);
      return text(200, token, 'text/plain', { 'X-aws-ec2-metadata-token-ttl-seconds': String(ttl) });
    }
    // A versioned token path (/2021-03-23/api/token) is forbidden; other PUTs are not allowed.
    if (method === 'PUT') return html(/\/api\/token$/.test(pathname) ? 403 : 405);
    if (method !== 'GET' && method !== 'HEAD') return html(405);
    const token = req.headers[EC2_TOKEN_HEADER];
    if (typeof token === 'string') {
      const expiry = tokens.get(token);
      if (expiry === undefined || expiry <= now()) return html(401);
    } else if (!ec2opts.allowImdsV1 && !ec2opts.tokenEndpointStatus) {
      return html(401);
    }
    // Directories answer with and without the trailing slash.
    const body = fixtureBody(pathname) ?? (pathname.endsWith('/') ? undefined : fixtureBody(`${pathname}/`));
    return body === undefined ? html(404) : text(200, body);
  }

  // --- Azure ---

  function azure(req: IncomingMessage, pathname: string, query: URLSearchParams): Reply {
    const json = (status: number, body: string): Reply => text(status, body, 'application/json; charset=utf-8');
    if (req.method !== 'GET') return json(405, JSON.stringify({ error: 'Method not allowed' }));
    if (req.headers['x-forwarded-for'] !== undefined) {
      return json(400, JSON.stringify({ error: 'Bad request. X-Forwarded-For header is not allowed' }));
    }
    if (req.headers['metadata'] !== 'true') return json(400, AZURE_MISSING_HEADER);
    const keys = [...query.keys()];
    if (new Set(keys).size !== keys.length) {
      return json(400, JSON.stringify({ error: 'Bad request. Duplicate query parameters' }));
    }
    const path = pathname.length > 1 ? pathname.replace(/\/+$/, '') : pathname;
    if (path === '/metadata/versions') return json(200, JSON.stringify({ apiVersions: AZURE_VERSIONS }));
    const version = query.get('api-version');
    if (version === null || !AZURE_VERSIONS.includes(version)) return json(400, AZURE_BAD_VERSION);
    const format = query.get('format') ?? 'json';
    if (format !== 'json' && format !== 'text') {
      return json(400, JSON.stringify({ error: 'Bad request. Unsupported format' }));
    }
    const notFound = json(404, JSON.stringify({ error: 'Not found' }));
    if (fixture.notFound?.includes(path)) return notFound;
    const exact = fixtureBody(path);
    if (exact !== undefined) return format === 'json' ? json(200, exact) : text(200, exact);
    // Sub-paths of the instance document (/metadata/instance/network/interface/0/...).
    const root = fixtureBody('/metadata/instance');
    if (root === undefined || !path.startsWith('/metadata/instance/')) return notFound;
    const { found, value } = walk(JSON.parse(root), path.slice('/metadata/instance/'.length).split('/'));
    if (!found) return notFound;
    if (format === 'json') {
      // A leaf needs format=text (MicrosoftDocs/azure-docs#15283).
      if (!isContainer(value)) return json(400, JSON.stringify({ error: 'Bad request. format=json is not supported on a leaf node' }));
      return json(200, JSON.stringify(value));
    }
    if (!isContainer(value)) return text(200, String(value));
    const children = Array.isArray(value) ? value.map((_, i) => String(i)) : Object.keys(value as object);
    return text(200, children.map((c) => `${c}\n`).join(''));
  }

  // --- GCP ---

  function gcpBody(pathname: string, query: URLSearchParams): Reply {
    const recursive = query.get('recursive') === 'true';
    const notFound = text(404, '<!DOCTYPE html>\n<html><title>Error 404 (Not Found)</title>404. That’s an error.</html>\n', 'text/html');
    if (fixture.notFound?.includes(pathname)) return notFound;
    const reply = (body: string, json: boolean): Reply =>
      text(200, body, json ? 'application/json' : 'application/text', { ...GCP_HEADERS, ETag: etagOf(body) });
    // The root document is stored under "/computeMetadata/v1/" as the recursive answer.
    const exact = fixtureBody(pathname);
    if (exact !== undefined && (pathname !== GCP_ROOT || recursive)) return reply(exact, recursive);
    const root = fixtureBody(GCP_ROOT);
    if (root === undefined || !pathname.startsWith(GCP_ROOT)) return notFound;
    const segments = pathname.slice(GCP_ROOT.length).split('/').filter((s) => s !== '');
    const { found, value } = walk(JSON.parse(root), segments);
    if (!found) return notFound;
    if (recursive || query.get('alt') === 'json') return reply(JSON.stringify(value), true);
    if (!isContainer(value)) return reply(String(value), false);
    // A directory needs its trailing slash; listings end every line with LF.
    if (!pathname.endsWith('/')) return text(301, '', 'text/html', { ...GCP_HEADERS, Location: `${pathname}/` });
    const entries = Array.isArray(value)
      ? value.map((v, i) => (isContainer(v) ? `${i}/` : String(i)))
      : Object.entries(value as Record<string, unknown>).map(([k, v]) => `${kebabCase(k)}${isContainer(v) ? '/' : ''}`);
    return reply(entries.map((e) => `${e}\n`).join(''), false);
  }

  function gcp(req: IncomingMessage, res: ServerResponse, pathname: string, query: URLSearchParams): Reply | Promise<Reply | null> {
    if (req.method !== 'GET') return text(405, 'Method not allowed', 'text/plain', GCP_HEADERS);
    if (req.headers['metadata-flavor'] !== 'Google' || req.headers['x-forwarded-for'] !== undefined) {
      const why = req.headers['x-forwarded-for'] !== undefined ? 'Request contains X-Forwarded-For header.' : 'Missing Metadata-Flavor:Google header.';
      return text(403, `Your client does not have permission to get URL <code>${pathname}</code> from this server. ${why}`, 'text/html');
    }
    const first = gcpBody(pathname, query);
    if (query.get('wait_for_change') !== 'true' || first.status !== 200) return first;
    // Hanging GET: answer at once if the client's etag is stale, else wait for a change.
    const lastEtag = query.get('last_etag');
    const startEtag = first.headers?.ETag;
    if (lastEtag !== null && lastEtag !== startEtag) return first;
    const timeoutSec = Number(query.get('timeout_sec') ?? 60);
    return new Promise<Reply | null>((resolve) => {
      const finish = (r: Reply | null): void => {
        clearTimeout(timer);
        waiters.delete(check);
        res.off('close', onClose);
        resolve(r);
      };
      const check = (): void => {
        const cur = gcpBody(pathname, query);
        if (cur.status !== 200 || cur.headers?.ETag !== startEtag) finish(cur);
      };
      const onClose = (): void => finish(null);
      const timer = setTimeout(() => finish(gcpBody(pathname, query)), Math.max(0, timeoutSec) * 1000);
      waiters.add(check);
      res.on('close', onClose);
    });
  }

  // --- faults ---

  function matchFaults(method: string, pathname: string): { latency: number; terminal?: FaultAction } {
    let latency = 0;
    let terminal: FaultAction | undefined;
    for (const active of [...faults]) {
      const f = active.fault;
      if (f.method && f.method.toUpperCase() !== method) continue;
      if (f.path !== undefined && f.path !== pathname) continue;
      if (f.pathRegex !== undefined && !new RegExp(f.pathRegex).test(pathname)) continue;
      if (f.kind !== 'latency' && terminal) continue; // the first terminal fault wins
      if (f.kind === 'latency') latency += f.ms;
      else terminal = f;
      if (active.remaining !== null && --active.remaining <= 0) faults.splice(faults.indexOf(active), 1);
    }
    return terminal ? { latency, terminal } : { latency };
  }

  function errorReply(status: number, body?: string): Reply {
    const reason = REASONS[status] ?? 'Error';
    if (body !== undefined) return text(status, body);
    if (provider === 'ec2') return text(status, awsHtml(status, reason), 'text/html');
    if (provider === 'azure') return text(status, JSON.stringify({ error: reason }), 'application/json; charset=utf-8');
    return text(status, `${status} ${reason}`, 'text/plain', GCP_HEADERS);
  }

  // --- sending ---

  function send(req: IncomingMessage, res: ServerResponse, reply: Reply): void {
    const body = Buffer.from(reply.body);
    res.writeHead(reply.status, { ...reply.headers, 'Content-Length': String(body.length) });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  async function sendSlow(res: ServerResponse, reply: Reply, ms: number): Promise<void> {
    const body = Buffer.from(reply.body);
    res.writeHead(reply.status, { ...reply.headers, 'Content-Length': String(body.length) });
    const chunks = 10;
    const size = Math.ceil(body.length / chunks) || 1;
    for (let i = 0; i < chunks && !res.destroyed; i++) {
      await delay(ms / chunks);
      res.write(body.subarray(i * size, (i + 1) * size));
    }
    res.end();
  }

  async function sendHuge(res: ServerResponse, megabytes: number, contentLength: boolean): Promise<void> {
    const total = Math.floor(megabytes * 1024 * 1024);
    res.writeHead(200, { 'Content-Type': 'text/plain', ...(contentLength ? { 'Content-Length': String(total) } : {}) });
    const chunk = Buffer.alloc(64 * 1024, 'a');
    let sent = 0;
    while (sent < total && !res.destroyed) {
      const piece = chunk.subarray(0, Math.min(chunk.length, total - sent));
      sent += piece.length;
      // Respect backpressure; stop when the client gives up.
      if (!res.write(piece)) await new Promise<void>((r) => { res.once('drain', r); res.once('close', r); });
    }
    res.end();
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now();
    const url = new URL(req.url ?? '/', 'http://mock');
    const method = (req.method ?? 'GET').toUpperCase();
    const headers: Record<string, string> = {};
    for (const h of LOGGED_HEADERS) {
      const v = req.headers[h];
      if (v !== undefined) headers[h] = Array.isArray(v) ? v.join(', ') : v;
    }
    const entry: LogEntry = { seq: ++seq, time: started, method, path: url.pathname, query: url.search.replace(/^\?/, ''), headers, status: null };
    logEntries.push(entry);
    const max = options.maxLogEntries ?? 10000;
    if (logEntries.length > max) logEntries.splice(0, logEntries.length - max);
    res.on('close', () => {
      if (res.headersSent) entry.status = res.statusCode;
      entry.durationMs = Date.now() - started;
    });

    const { latency, terminal } = matchFaults(method, url.pathname);
    if (terminal) entry.fault = terminal.kind;
    if (latency > 0) await delay(latency);
    if (res.destroyed) return;

    switch (terminal?.kind) {
      case 'hang':
        return; // the socket stays open until the client or close() ends it
      case 'close':
        req.socket.destroy();
        return;
      case 'status':
        return send(req, res, errorReply(terminal.status, terminal.body));
      case 'html':
        return send(req, res, text(200, HTML_FAULT_BODY, 'text/html'));
      case 'empty':
        return send(req, res, text(200, '', provider === 'azure' ? 'application/json; charset=utf-8' : 'text/plain'));
      case 'huge':
        return sendHuge(res, terminal.megabytes, terminal.contentLength ?? false);
      default:
        break;
    }

    const reply =
      provider === 'ec2'
        ? ec2(req, url.pathname)
        : provider === 'azure'
          ? azure(req, url.pathname, url.searchParams)
          : await gcp(req, res, url.pathname, url.searchParams);
    if (reply === null || res.destroyed) return; // a waiting client went away

    if (terminal?.kind === 'slow') return sendSlow(res, reply, terminal.ms);
    if (terminal?.kind === 'truncate') {
      const body = Buffer.from(reply.body);
      const half = body.subarray(0, Math.floor(body.length / 2));
      if (!terminal.abort) return send(req, res, { ...reply, body: half });
      res.writeHead(reply.status, { ...reply.headers, 'Content-Length': String(body.length) });
      res.write(half, () => res.destroy());
      return;
    }
    send(req, res, reply);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      process.stderr.write(`mock-imds: ${String(err instanceof Error ? err.stack : err)}\n`);
      if (!res.headersSent) send(req, res, text(500, 'mock-imds internal error'));
      else res.destroy();
    });
  });
  // Hanging GETs and hang faults outlive node's default request timeout.
  server.requestTimeout = 0;
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  return {
    provider,
    server,
    listen(port = 0, host = '127.0.0.1') {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve((server.address() as AddressInfo).port);
        });
      });
    },
    close() {
      for (const w of [...waiters]) w();
      return new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      });
    },
    state() {
      const t = now();
      return {
        fixture,
        options,
        faults: faults.map((f) => ({ ...f })),
        liveTokens: [...tokens.values()].filter((e) => e > t).length,
        clockOffsetMs,
        waiting: waiters.size,
      };
    },
    setFixture(next) {
      if (next.provider !== provider) throw new Error(`fixture provider ${next.provider} != mock provider ${provider}`);
      fixture = structuredClone(next);
      changed();
    },
    patch(p) {
      for (const [path, body] of Object.entries(p.paths ?? {})) {
        if (body === null) delete fixture.paths[path];
        else fixture.paths[path] = body;
      }
      if (p.notFound) fixture.notFound = [...p.notFound];
      changed();
    },
    setOptions(o) {
      options = { ...options, ...o, ec2: { ...options.ec2, ...o.ec2 } };
    },
    addFault(fault) {
      if (fault.pathRegex !== undefined) new RegExp(fault.pathRegex); // reject a bad regex now
      const id = nextFaultId++;
      faults.push({ id, fault, remaining: fault.count ?? null });
      return id;
    },
    removeFault(id) {
      const i = faults.findIndex((f) => f.id === id);
      if (i >= 0) faults.splice(i, 1);
      return i >= 0;
    },
    clearFaults() {
      faults.length = 0;
    },
    log(sinceSeq = 0) {
      return logEntries.filter((e) => e.seq > sinceSeq);
    },
    resetLog() {
      logEntries = [];
    },
    expireTokens() {
      tokens.clear();
    },
    advanceClock(seconds) {
      clockOffsetMs += seconds * 1000;
    },
  };
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ---------------------------------------------------------------------------------------------
// Control API: HTTP on a Unix socket, so that a test in the host namespace can steer a mock
// running inside a network namespace (filesystem sockets cross namespaces, TCP does not).
//
//   GET    /state                    -> MockImdsState
//   PUT    /fixture     Fixture      -> replace the metadata (wakes GCP waiters)
//   PATCH  /fixture     MetadataPatch
//   PUT    /options     MockImdsOptions (merged)
//   POST   /faults      Fault        -> {id}
//   DELETE /faults                   -> clear all;  DELETE /faults/<id> -> one
//   GET    /log?since=<seq>          -> LogEntry[];  DELETE /log -> reset
//   POST   /tokens/expire            -> invalidate all EC2 tokens
//   POST   /clock       {advanceSeconds}

export function createControlServer(mock: MockImdsServer): Server {
  return createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const reply = (status: number, value: unknown): void => {
        const body = JSON.stringify(value ?? null);
        res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
        res.end(body);
      };
      try {
        const url = new URL(req.url ?? '/', 'http://control');
        const body: unknown = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined;
        const route = `${req.method} ${url.pathname}`;
        const faultId = /^DELETE \/faults\/(\d+)$/.exec(route);
        if (route === 'GET /state') return reply(200, mock.state());
        if (route === 'PUT /fixture') return reply(200, mock.setFixture(body as Fixture));
        if (route === 'PATCH /fixture') return reply(200, mock.patch(body as MetadataPatch));
        if (route === 'PUT /options') return reply(200, mock.setOptions(body as MockImdsOptions));
        if (route === 'POST /faults') return reply(200, { id: mock.addFault(body as Fault) });
        if (route === 'DELETE /faults') return reply(200, mock.clearFaults());
        if (faultId) return reply(mock.removeFault(Number(faultId[1])) ? 200 : 404, null);
        if (route === 'GET /log') return reply(200, mock.log(Number(url.searchParams.get('since') ?? 0)));
        if (route === 'DELETE /log') return reply(200, mock.resetLog());
        if (route === 'POST /tokens/expire') return reply(200, mock.expireTokens());
        if (route === 'POST /clock') return reply(200, mock.advanceClock(Number((body as { advanceSeconds: number }).advanceSeconds)));
        reply(404, { error: `no control route ${route}` });
      } catch (err) {
        reply(400, { error: String(err instanceof Error ? err.message : err) });
      }
    });
  });
}
