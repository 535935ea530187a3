// The local REST API (SPEC §7). Read-only: GET only, no request bodies, and a Host header
// that names loopback, so that a web page cannot reach it through DNS rebinding.
import type { Server } from 'node:http';
import Koa from 'koa';
import Router from '@koa/router';
import type { InstanceMetadata } from './model.js';
import type { Plan } from './plan.js';
import { renderScript } from './render.js';
import type { StateFile } from './state.js';

export interface ApiSource {
  /** The last metadata read successfully, if any. */
  metadata(): InstanceMetadata | undefined;
  status(): StatusDocument;
  /** What the next reconcile would do, planned against the live kernel. */
  plan(): Promise<Plan | undefined>;
}

export interface StatusDocument {
  provider: string;
  interfaces: { name: string; mac: string; key: number; table: number; policyRouted: boolean; addresses: string[] }[];
  /** null until the first successful metadata read. */
  lastRefresh: string | null;
  lastError: string | null;
  applied: NonNullable<StateFile['applied']> | null;
}

/** The /api/v1/status answer from the last plan and what state.json records. */
export function statusDocument(provider: string, plan: Plan | undefined, state: Pick<StateFile, 'lastRefresh' | 'lastError' | 'applied'>): StatusDocument {
  return {
    provider,
    interfaces: (plan?.managed ?? []).map((nic) => ({
      name: nic.link.name,
      mac: nic.metadata.mac,
      key: nic.metadata.key,
      table: nic.table,
      policyRouted: nic.policyRouted,
      addresses: nic.metadata.addresses,
    })),
    lastRefresh: state.lastRefresh ?? null,
    lastError: state.lastError ?? null,
    applied: state.applied ?? null,
  };
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const IDENTITY_NAMES = ['document', 'pkcs7', 'signature', 'rsa2048'];
const SECRET_CREDENTIAL_KEYS = ['SecretAccessKey', 'Token'];

export function isLoopbackHost(header: string | undefined): boolean {
  if (!header) return false;
  const host = header.startsWith('[') ? header.slice(1, header.indexOf(']')) : header.replace(/:\d+$/, '');
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export function redactCredentials(credentials: unknown): unknown {
  if (typeof credentials !== 'object' || credentials === null) return credentials;
  return Object.fromEntries(
    Object.entries(credentials).map(([key, value]) => [key, SECRET_CREDENTIAL_KEYS.includes(key) ? 'REDACTED' : value]),
  );
}

export function createApi(source: ApiSource): Koa {
  const app = new Koa();
  const router = new Router();
  const metadata = () => {
    const current = source.metadata();
    if (!current) throw new HttpError(503, 'the daemon has not read the metadata yet; cnctl status (/api/v1/status) shows why');
    return current;
  };
  const ec2Only = (what: string) => {
    const current = metadata();
    if (current.provider !== 'ec2') throw new HttpError(404, `${what} is available on EC2 only; this is ${current.provider}`);
    return current;
  };

  router.get('/api/cloud/system', (ctx) => {
    ctx.body = metadata().documents.system;
  });
  router.get('/api/cloud/network', (ctx) => {
    ctx.body = metadata().documents.network;
  });
  router.get('/api/cloud/credentials', (ctx) => {
    const credentials = ec2Only('credentials').documents.credentials;
    if (credentials === undefined) throw new HttpError(404, 'no IAM role is attached to this instance');
    ctx.body = redactCredentials(credentials);
  });
  router.get('/api/cloud/dynamicinstanceidentity/:name', (ctx) => {
    const name = ctx.params.name ?? '';
    if (!IDENTITY_NAMES.includes(name)) throw new HttpError(404, `unknown identity document ${name}; use ${IDENTITY_NAMES.join(', ')}`);
    const value = ec2Only('the instance identity').documents.identity?.[name];
    if (value === undefined) throw new HttpError(404, `the metadata service did not provide ${name}`);
    ctx.body = name === 'document' ? (JSON.parse(value) as unknown) : { [name]: value };
  });
  router.get('/api/v1/status', (ctx) => {
    ctx.body = source.status();
  });
  router.get('/api/v1/plan', async (ctx) => {
    const plan = await source.plan();
    if (!plan) throw new HttpError(503, 'the daemon has not read the metadata yet, so there is nothing to plan; cnctl status (/api/v1/status) shows why');
    ctx.body = { changes: plan.changes, script: renderScript(plan.changes), notices: plan.notices };
  });

  app.use(async (ctx, next) => {
    try {
      if (!isLoopbackHost(ctx.get('host'))) throw new HttpError(403, 'Host header must name a loopback address');
      if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
        ctx.set('Allow', 'GET, HEAD');
        throw new HttpError(405, `method ${ctx.method} not allowed; this API is read-only`);
      }
      if (Number(ctx.get('content-length') || 0) > 0 || ctx.get('transfer-encoding')) throw new HttpError(400, 'request bodies are not accepted');
      await next();
      if (ctx.body === undefined) throw new HttpError(404, `no such endpoint ${ctx.path}`);
    } catch (error) {
      const status = error instanceof HttpError ? error.status : 500;
      ctx.status = status;
      ctx.body = { error: error instanceof HttpError ? error.message : 'internal error', status };
    }
  });
  app.use(router.routes());
  return app;
}

/** Listens and resolves once bound; rejects with a one-line reason (port in use, bad address). */
export function listen(app: Koa, host: string, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = app.listen(port, host);
    server.requestTimeout = 10_000;
    server.headersTimeout = 5_000;
    server.once('listening', () => resolve(server));
    server.once('error', (error: NodeJS.ErrnoException) => reject(new Error(`cannot listen on ${host}:${port}: ${error.code ?? error.message}`)));
  });
}
