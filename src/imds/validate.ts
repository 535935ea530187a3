// Validation shared by the providers: bodies are parsed here, at the edge, with a one-line
// reason for anything that is not what the service should have sent.
import type { InterfaceMetadata, RejectedInterface } from '../model.js';
import { ImdsError } from './http.js';

/** Two entries with one MAC cannot both be right: neither is applied. */
export function rejectDuplicateMacs(interfaces: InterfaceMetadata[], rejected: RejectedInterface[]): InterfaceMetadata[] {
  const count = new Map<string, number>();
  for (const nic of interfaces) count.set(nic.mac, (count.get(nic.mac) ?? 0) + 1);
  for (const [mac, times] of count) {
    if (times > 1) rejected.push({ mac, ambiguous: true, reason: `MAC listed ${times} times in the metadata` });
  }
  return interfaces.filter((nic) => count.get(nic.mac) === 1);
}

/** Parses a JSON document body, with a one-line reason when it is not one. */
export function parseJsonDocument(body: string, what: string): Record<string, unknown> {
  let document: unknown;
  try {
    document = JSON.parse(body);
  } catch {
    const start = body.trimStart().slice(0, 1);
    const kind = body.trim() === '' ? 'an empty body' : start === '<' ? 'HTML' : 'a body that is not complete JSON';
    throw new ImdsError(`${what} is ${kind}`);
  }
  if (typeof document !== 'object' || document === null || Array.isArray(document)) throw new ImdsError(`${what} is not a JSON object`);
  return document as Record<string, unknown>;
}
