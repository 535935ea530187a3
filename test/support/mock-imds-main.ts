// Entry point of the mock IMDS process (bundled by mock-imds-process.ts, run with
// `ip netns exec NS node <bundle> --config FILE`).
//
// FILE is JSON: { fixture, options?, host?, port?, controlSocket }.
// Prints "READY <port>" once both the IMDS port and the control socket listen.
// Exits on SIGTERM/SIGINT and when stdin closes, so that a crashed test run leaves no orphan.
import { readFileSync, rmSync } from 'node:fs';
import { createControlServer, createMockImdsServer, type MockImdsOptions } from './mock-imds.js';
import type { Fixture } from './fixture.js';

interface MainConfig {
  fixture: Fixture;
  options?: MockImdsOptions;
  host?: string;
  port?: number;
  controlSocket: string;
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--config');
  const file = i >= 0 ? process.argv[i + 1] : undefined;
  if (!file) throw new Error('usage: mock-imds --config FILE');
  const config = JSON.parse(readFileSync(file, 'utf8')) as MainConfig;

  const mock = createMockImdsServer(config.fixture, config.options ?? {});
  const port = await mock.listen(config.port ?? 0, config.host ?? '127.0.0.1');
  rmSync(config.controlSocket, { force: true });
  const control = createControlServer(mock);
  await new Promise<void>((resolve, reject) => {
    control.once('error', reject);
    control.listen(config.controlSocket, () => resolve());
  });

  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    control.close();
    rmSync(config.controlSocket, { force: true });
    void mock.close().then(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();

  process.stdout.write(`READY ${port}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`mock-imds: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
