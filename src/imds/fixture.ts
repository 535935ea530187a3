// A recorded metadata service for `--dry-run --fixture DIR`: answers from metadata.json the
// way the real service would, so the providers run unchanged without any network.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROVIDERS, type ProviderName } from '../model.js';
import type { HttpRequest, HttpResponse, Transport } from './http.js';

export interface RecordedMetadata {
  provider: ProviderName;
  /** URL pathname (no query) -> exact body of the 200 answer. */
  paths: Record<string, string>;
}

export function readRecordedMetadata(dir: string): RecordedMetadata {
  const file = join(dir, 'metadata.json');
  let parsed: Partial<RecordedMetadata>;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<RecordedMetadata>;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? (existsSync(dir) ? 'it has no metadata.json' : 'no such directory') : code === 'ENOTDIR' ? 'it is not a directory' : code === 'EACCES' ? 'permission denied' : `metadata.json: ${(error as Error).message.split('\n')[0]}`;
    throw new Error(why);
  }
  if (!PROVIDERS.includes(parsed.provider as ProviderName) || typeof parsed.paths !== 'object' || parsed.paths === null) {
    throw new Error('its metadata.json needs "provider" (ec2, azure or gcp) and "paths"');
  }
  return parsed as RecordedMetadata;
}

export class FixtureTransport implements Transport {
  readonly base: string;

  constructor(
    private readonly recorded: RecordedMetadata,
    dir: string,
  ) {
    this.base = `fixture:${dir}`;
  }

  async request(request: HttpRequest): Promise<HttpResponse> {
    const headers = this.recorded.provider === 'gcp' ? { 'metadata-flavor': 'Google' } : {};
    if (request.method === 'PUT') {
      return { status: 200, headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '21600' }, body: 'fixture-token' };
    }
    const body = this.recorded.paths[request.path.split('?')[0]!];
    return body === undefined ? { status: 404, headers, body: '' } : { status: 200, headers, body };
  }
}
