// Which build of cloud-network the benchmark runs:
//   bundle  build/bench/lib/cloud-network.mjs, made by packaging/build.mjs exactly as `make bundle`
//           makes what the DEB and RPM install (one file, no node_modules): what users run
//   dist    bin/cloud-network -> dist/ (tsc output importing node_modules): the development launcher,
//           run through the test world's runCloudNetwork/startCloudNetwork
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../test/support/fixture.js';
import { BIN, runCloudNetwork, startCloudNetwork, type Daemon, type EnvOverrides, type RunResult, type World } from '../test/support/world.js';

export type ProgramKind = 'bundle' | 'dist';

export interface Program {
  kind: ProgramKind;
  /** Command line before the program's own arguments. */
  argv: string[];
  /** The file that identifies the program in /proc/PID/cmdline. */
  entry: string;
}

export const BUNDLE = join(REPO_ROOT, 'build/bench/lib/cloud-network.mjs');

/**
 * `bundle` may name another bundle file (BENCH_BUNDLE) and `nodeArgs` add node/V8 flags before it
 * (BENCH_NODE_ARGS, like an installed launcher could): to measure a proposed change before making it.
 */
export function program(kind: ProgramKind, bundle = BUNDLE, nodeArgs: string[] = []): Program {
  if (kind === 'dist') {
    if (nodeArgs.length > 0) throw new Error('BENCH_NODE_ARGS needs BENCH_PROGRAM=bundle (bin/cloud-network starts node itself); use BENCH_NODE_OPTIONS');
    return { kind, argv: [BIN], entry: BIN };
  }
  if (!existsSync(bundle)) throw new Error(`${bundle} is missing: run the benchmark with npm run bench, which builds it`);
  return { kind, argv: [process.execPath, ...nodeArgs, bundle], entry: bundle };
}

/** Like runCloudNetwork, for either build. */
export function runProgram(world: World, p: Program, args: string[], env: EnvOverrides = {}): Promise<RunResult> {
  return runCloudNetwork(world, args, env, {}, p.argv);
}

/** Like startCloudNetwork (daemon mode, killed by world.destroy()), for either build. */
export function startProgram(world: World, p: Program, args: string[] = [], env: EnvOverrides = {}): Daemon {
  return startCloudNetwork(world, args, env, p.argv);
}
