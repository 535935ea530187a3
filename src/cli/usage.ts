// --help for both commands: citty's usage text, plain (no colours, no padding) when it is not
// going to a terminal, so that it reads well in a pipe, a file or a man-page generator.
import { stripVTControlCharacters } from 'node:util';
import { renderUsage, type ArgsDef, type CommandDef } from 'citty';

export async function printUsage<T extends ArgsDef = ArgsDef>(cmd: CommandDef<T>, parent?: CommandDef<T>, footer = ''): Promise<void> {
  const usage = `${await renderUsage(cmd, parent)}${footer ? `\n\n${footer}` : ''}`;
  const plain = process.stdout.isTTY ? usage : stripVTControlCharacters(usage);
  process.stdout.write(`${plain.replace(/[ \t]+$/gm, '').replace(/\n{3,}/g, '\n\n').trimEnd()}\n`);
}
