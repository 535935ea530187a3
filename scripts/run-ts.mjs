// Runs a TypeScript script of the repository (scripts/demo.ts, bench/run.ts) on Node 20, which
// cannot run TypeScript itself: bundles it with esbuild into build/run-ts/ (packages stay external
// and resolve from node_modules), then imports it with the remaining arguments.
// Every bundled module keeps its own import.meta.url, so paths relative to a source file (the
// test world's fixtures, the mock's entry) still point at the sources.
import { readFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const [entry, ...rest] = process.argv.slice(2);
if (!entry) throw new Error('usage: node scripts/run-ts.mjs FILE.ts [ARGS...]');
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outfile = join(root, 'build/run-ts', `${basename(entry, '.ts')}.mjs`);

const keepImportMetaUrl = {
  name: 'keep-import-meta-url',
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      return { contents: source.replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href)), loader: 'ts' };
    });
  },
};

await build({
  entryPoints: [resolve(entry)],
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
process.argv = [process.argv[0], outfile, ...rest];
await import(pathToFileURL(outfile).href);
