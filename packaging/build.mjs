#!/usr/bin/env node
// Production bundle: one self-contained ES module per binary, so that an installed system needs
// only Node.js (no node_modules, no npm, no network). Used by `make bundle` and everything that
// installs (make install, make deb, make rpm, make dist).
//
//   node packaging/build.mjs [--src-dir DIR] [--out-dir DIR]
//
// Reads DIR/cloud-network.ts and DIR/cnctl.ts (default src/cli) and writes
// OUT/lib/cloud-network.mjs, OUT/lib/cnctl.mjs and OUT/THIRD-PARTY-NOTICES (default OUT = build).
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BINARIES = ['cloud-network', 'cnctl'];

const { values } = parseArgs({
  options: {
    'src-dir': { type: 'string', default: join(ROOT, 'src', 'cli') },
    'out-dir': { type: 'string', default: join(ROOT, 'build') },
  },
});
const srcDir = resolve(values['src-dir']);
const outDir = resolve(values['out-dir']);

const entryPoints = {};
for (const name of BINARIES) {
  const entry = join(srcDir, `${name}.ts`);
  if (!existsSync(entry)) {
    console.error(`build.mjs: ${entry} does not exist; nothing to bundle for ${name}`);
    process.exit(2);
  }
  entryPoints[name] = entry;
}

const result = await build({
  entryPoints,
  outdir: join(outDir, 'lib'),
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  // CommonJS dependencies (koa, ...) call require() for Node built-ins; an ES module has no
  // require of its own, so give the bundle one.
  banner: { js: "import { createRequire as __cnCreateRequire } from 'node:module';\nconst require = __cnCreateRequire(import.meta.url);" },
  // Licence texts go to THIRD-PARTY-NOTICES instead (below).
  legalComments: 'none',
  charset: 'utf8',
  metafile: true,
  logLevel: 'warning',
}).catch(() => process.exit(1)); // esbuild has already printed the errors

// Everything must be inside the bundle except Node's own modules.
const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
for (const [file, output] of Object.entries(result.metafile.outputs)) {
  for (const imported of output.imports) {
    if (imported.external && !builtins.has(imported.path)) {
      console.error(`build.mjs: ${file} still imports ${imported.path} at run time`);
      process.exit(1);
    }
  }
}

// One notice per npm package that ended up in a bundle: name, version, licence, licence text.
const packageDirs = new Set();
for (const input of Object.keys(result.metafile.inputs)) {
  const match = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
  if (match) packageDirs.add(resolve(ROOT, match[1]));
}
const notices = [...packageDirs]
  .map((dir) => {
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    const licenseFile = readdirSync(dir).find((f) => /^(licen[cs]e|copying)(\..*)?$/i.test(f));
    const text = licenseFile ? readFileSync(join(dir, licenseFile), 'utf8').trim() : '(no licence file in the package)';
    const title = `${pkg.name} ${pkg.version}`;
    return { title, text: `${title} (${pkg.license ?? 'see below'})\n\n${text}\n` };
  })
  .sort((a, b) => (a.title < b.title ? -1 : a.title > b.title ? 1 : 0));
const header =
  'cloud-network bundles the following npm packages into /usr/lib/cloud-network/*.mjs.\n' +
  'Their copyright notices and licences follow.\n';
mkdirSync(outDir, { recursive: true });
writeFileSync(
  join(outDir, 'THIRD-PARTY-NOTICES'),
  [header, ...notices.map((n) => n.text)].join(`\n${'-'.repeat(72)}\n\n`),
);

for (const file of Object.keys(result.metafile.outputs)) console.log(`bundled ${file}`);
