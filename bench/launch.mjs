// Runs bench/run.ts (see there for the BENCH_* variables). Node 20 cannot run TypeScript, so it is bundled first with esbuild (packages
// stay external and resolve from node_modules) into build/bench/run.mjs, like the test world
// bundles its mock IMDS. Every bundled module keeps its own import.meta.url, so the test world's
// paths relative to its sources (fixtures, the mock's entry) still point at the sources.
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outfile = join(root, 'build/bench/run.mjs');

const keepImportMetaUrl = {
  name: 'keep-import-meta-url',
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      return { contents: source.replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href)), loader: 'ts' };
    });
  },
};

// The program as the packages ship it: packaging/build.mjs, into build/bench/ (not build/lib,
// which belongs to `make bundle`).
execFileSync(process.execPath, [join(root, 'packaging/build.mjs'), '--out-dir', join(root, 'build/bench')], { stdio: ['ignore', 'ignore', 'inherit'] });

await build({
  entryPoints: [join(root, 'bench/run.ts')],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  sourcemap: 'inline',
  logLevel: 'warning',
  plugins: [keepImportMetaUrl],
});
await import(pathToFileURL(outfile).href);
