// Applies a plan with one `ip -force -batch -` process: -force keeps going past a failed
// line, so one bad line cannot leave the rest of the configuration half-done.
import { runIpRaw } from './ip.js';

export interface LineFailure {
  /** The script line that failed, as rendered. */
  line: string;
  error: string;
}

/** Runs a rendered script (see renderScript); an empty one starts no process. */
export async function applyScript(script: string): Promise<LineFailure[]> {
  if (script === '') return [];
  const result = await runIpRaw(['-force', '-batch', '-'], script);
  if (result.exitCode === 0) return [];
  return parseBatchFailures(script, result.stderr);
}

/** ip prints each error's message lines, then "Command failed -:N" with the script line number. */
export function parseBatchFailures(script: string, stderr: string): LineFailure[] {
  const lines = script.split('\n');
  const failures: LineFailure[] = [];
  let pending: string[] = [];
  for (const text of stderr.split('\n')) {
    const failed = /^Command failed -:(\d+)$/.exec(text.trim());
    if (failed) {
      failures.push({ line: lines[Number(failed[1]) - 1] ?? `line ${failed[1]}`, error: pending.join(' ') || 'failed' });
      pending = [];
    } else if (text.trim() !== '') {
      pending.push(text.trim());
    }
  }
  if (failures.length === 0) failures.push({ line: '(batch)', error: stderr.trim() || 'ip failed' });
  return failures;
}
