// What every mode needs before it can work: the config, the provider and its client.
// Errors here carry the exit code of SPEC §2 so the CLI can print one line and leave.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { configPathFrom, ConfigError, loadConfig, type LoadedConfig } from './config.js';
import { DEFAULT_DMI_DIR, detectProvider } from './detect.js';
import { FixtureTransport, readRecordedMetadata } from './imds/fixture.js';
import { HttpTransport, type Transport } from './imds/http.js';
import { createClient, DEFAULT_ENDPOINTS, type MetadataClient } from './imds/provider.js';
import { parseKernelSnapshot, type KernelState, type RawKernelSnapshot } from './kernel.js';
import { PROVIDERS, type ProviderName } from './model.js';
import { readState, type StateFile } from './state.js';

export const EXIT = { ok: 0, runtime: 1, usage: 2, noCloud: 3 } as const;

export class ExitError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

export function loadConfigOrExit(flag: string | undefined, env: NodeJS.ProcessEnv): LoadedConfig {
  const { path, explicit } = configPathFrom(flag, env);
  try {
    return loadConfig(path, explicit, env);
  } catch (error) {
    if (error instanceof ConfigError) throw new ExitError(error.message, EXIT.usage);
    throw error;
  }
}

export function chooseProvider(flag: string | undefined, env: NodeJS.ProcessEnv): ProviderName {
  const named = flag ?? env.CLOUD_NETWORK_PROVIDER;
  if (named) {
    const provider = named.toLowerCase();
    if (!(PROVIDERS as readonly string[]).includes(provider)) {
      throw new ExitError(`unknown provider ${JSON.stringify(named)}: use ec2, azure or gcp`, EXIT.usage);
    }
    return provider as ProviderName;
  }
  const dmiDir = env.CLOUD_NETWORK_DMI_DIR || DEFAULT_DMI_DIR;
  const detected = detectProvider(dmiDir);
  if (!detected) {
    throw new ExitError(
      `no supported cloud detected: DMI data in ${dmiDir} matches none of EC2, Azure, GCP; use --provider if this is one`,
      EXIT.noCloud,
    );
  }
  return detected;
}

export interface LiveSource {
  provider: ProviderName;
  transport: HttpTransport;
  client: MetadataClient;
}

export function liveSource(providerFlag: string | undefined, env: NodeJS.ProcessEnv): LiveSource {
  const provider = chooseProvider(providerFlag, env);
  const endpoint = env.CLOUD_NETWORK_ENDPOINT || DEFAULT_ENDPOINTS[provider];
  let transport: HttpTransport;
  try {
    transport = new HttpTransport(endpoint);
  } catch (error) {
    throw new ExitError(`CLOUD_NETWORK_ENDPOINT ${JSON.stringify(endpoint)} is not usable: ${(error as Error).message}`, EXIT.usage);
  }
  return { provider, transport, client: createClient(provider, transport) };
}

/** A recorded machine for `--dry-run --fixture DIR`: metadata, kernel, ownership and config. */
export interface FixtureSource {
  provider: ProviderName;
  client: MetadataClient;
  kernel: KernelState;
  state: StateFile;
  /** The fixture's cloud-network.toml, when it has one. */
  config?: LoadedConfig;
}

export function fixtureSource(dir: string): FixtureSource {
  try {
    const recorded = readRecordedMetadata(dir);
    const transport: Transport = new FixtureTransport(recorded, dir);
    const kernelFile = join(dir, 'kernel.json');
    const kernel = parseKernelSnapshot(JSON.parse(readFileSync(kernelFile, 'utf8')) as RawKernelSnapshot);
    const state = readState(dir);
    const configFile = join(dir, 'cloud-network.toml');
    return {
      provider: recorded.provider,
      client: createClient(recorded.provider, transport),
      kernel,
      state,
      config: existsSync(configFile) ? loadConfig(configFile, true, {}) : undefined,
    };
  } catch (error) {
    throw new ExitError(`cannot use fixture ${dir}: ${(error as Error).message.split('\n')[0]}`, EXIT.usage);
  }
}

