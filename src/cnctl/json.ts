// Reading API documents: they are the cloud's JSON as the daemon kept it, so every field is
// looked at defensively and a missing one is shown as "-" rather than failing the view.
export type Json = Record<string, unknown>;

export const asObject = (value: unknown): Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Json) : {};
export const asArray = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);

/** The non-empty strings of a list (metadata marks "none" with "" as often as by leaving it out). */
export const strings = (value: unknown): string[] =>
  asArray(value).filter((item): item is string => typeof item === 'string' && item !== '');

/** "projects/123/zones/europe-west1-d" -> "europe-west1-d". */
export const lastSegment = (value: unknown): unknown => (typeof value === 'string' ? value.slice(value.lastIndexOf('/') + 1) : value);

/** Metadata values end up on a terminal: control characters (C0, DEL, C1) are escaped, never interpreted. */
const safe = (text: string): string =>
  text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);

/** One-line display form of a value: lists joined by ", ", objects as key=value, "-" for nothing. */
export function show(value: unknown): string {
  if (typeof value === 'string') return value === '' ? '-' : safe(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) {
    const items = value.map(show).filter((item) => item !== '-');
    return items.length > 0 ? items.join(', ') : '-';
  }
  if (typeof value === 'object' && value !== null) {
    const pairs = Object.entries(value).map(([key, item]) => `${safe(key)}=${show(item)}`);
    return pairs.length > 0 ? pairs.join(', ') : '-';
  }
  return '-';
}
