// Text layout of the views: "Key: value" blocks and column tables, aligned however long the
// values are, because the width is computed from what is printed.

/** A label and its already formatted value. */
export type Row = [label: string, value: string];

const labelWidth = (rows: Row[]) => Math.max(...rows.map(([label]) => label.length)) + 1;

/** "Label:" padded to the longest label of the block, two spaces, then the value. */
export function block(rows: Row[], width = labelWidth(rows)): string {
  return rows.map(([label, value]) => `${`${label}:`.padEnd(width)}  ${value}\n`).join('');
}

/**
 * Blocks separated by an empty line, as `ip addr` separates links. They share one label width,
 * so that blocks with and without a long provider-specific label still line up with each other.
 */
export function blocks(list: Row[][]): string {
  const width = labelWidth(list.flat());
  return list.map((rows) => block(rows, width)).join('\n');
}

/** A header line and rows, each column as wide as its widest cell; the last column is not padded. */
export function columns(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, index) => Math.max(...all.map((row) => (row[index] ?? '').length)));
  return all
    .map((row) => row.map((cell, index) => (index === row.length - 1 ? cell : cell.padEnd(widths[index]!))).join('  '))
    .map((line) => `${line}\n`)
    .join('');
}
