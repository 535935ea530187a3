// The only place that starts `ip`. Each call is one process; callers batch their work.
import { execa } from 'execa';

export class IpError extends Error {
  constructor(
    message: string,
    /** stderr of the failed run, for callers that map errors back to batch lines. */
    readonly stderr: string = '',
  ) {
    super(message);
  }
}

export interface IpResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs `ip ARGS` with `input` on stdin and returns its output whatever the exit code. */
export async function runIpRaw(args: string[], input: string): Promise<IpResult> {
  const result = await execa('ip', args, { input, reject: false, stripFinalNewline: false });
  if (result.failed && result.exitCode === undefined) {
    const code = (result as { code?: string }).code;
    throw new IpError(
      code === 'ENOENT' ? 'cannot run ip: not found in PATH; install iproute2' : `cannot run ip: ${result.shortMessage}`,
    );
  }
  return { exitCode: result.exitCode ?? 1, stdout: result.stdout, stderr: result.stderr };
}

/** Runs `ip ARGS` and returns stdout; throws IpError with ip's first error line on failure. */
export async function runIp(args: string[], input: string): Promise<string> {
  const result = await runIpRaw(args, input);
  if (result.exitCode !== 0) {
    const firstLine = result.stderr.split('\n').find((line) => line.trim() !== '') ?? `exit code ${result.exitCode}`;
    throw new IpError(`ip ${args.join(' ')} failed: ${firstLine}`, result.stderr);
  }
  return result.stdout;
}
