// The README's Reliability tables name the hostile-input tests one row each: this keeps both
// lists equal, so a renamed, added or removed test cannot leave the README behind.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

function readmeRows(): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.split(/^## /m).find((part) => part.startsWith('Reliability'))!;
  return section
    .split('\n')
    .filter((line) => line.startsWith('| ') && !line.startsWith('| Test |'))
    .map((line) => line.slice(2).split(' | ')[0]!.trim());
}

it('lists exactly the hostile-input tests', async () => {
  const listed = await execa(process.execPath, [join(ROOT, 'node_modules/vitest/vitest.mjs'), 'list', 'test/e2e/hostile-', '--json'], { cwd: ROOT });
  const tests = (JSON.parse(listed.stdout) as { name: string }[]).map((test) => test.name.split(' > ').pop()!);
  const rows = readmeRows();
  expect(rows.length).toBeGreaterThan(50);
  expect([...rows].sort()).toEqual([...tests].sort());
});
