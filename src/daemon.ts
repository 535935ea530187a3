// The long-running mode: reconcile at start and every RefreshTimer; stop cleanly on signals,
// leaving the network configuration in place.
import type { LoadedConfig } from './config.js';
import { EXIT, liveSource } from './context.js';
import type { Logger } from './log.js';
import type { InstanceMetadata } from './model.js';
import { reconcile, recordDocuments, recordFailure } from './reconcile.js';
import { prepareStateDir, stateDirFrom } from './state.js';

export interface DaemonOptions {
  configFlag?: string;
  providerFlag?: string;
}

export async function runDaemon(options: DaemonOptions, loaded: LoadedConfig, log: Logger): Promise<number> {
  const source = liveSource(options.providerFlag, process.env);
  const stateDir = stateDirFrom(process.env);
  prepareStateDir(stateDir);
  let lastGood: InstanceMetadata | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopping = false;

  const cycle = async () => {
    try {
      const metadata = await source.client.fetchMetadata({ documents: true });
      lastGood = metadata;
      const result = await reconcile(metadata, loaded.config, stateDir, log);
      recordDocuments(metadata, result.plan, stateDir);
    } catch (error) {
      log.error((error as Error).message);
      recordFailure(stateDir, (error as Error).message);
    }
    if (!stopping) timer = setTimeout(() => void cycle(), loaded.config.refreshSeconds * 1000);
  };

  return new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      stopping = true;
      clearTimeout(timer);
      source.transport.close();
      log.info(`${signal}: stopping; network configuration left in place (${lastGood ? lastGood.interfaces.length : 0} interfaces)`);
      resolve(EXIT.ok);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    void cycle();
  });
}
