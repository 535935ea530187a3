// `cnctl show ...`: SSH keys, EC2 credentials and identity, GCP project.
import type { ProviderName } from '../model.js';
import { asArray, asObject, show, type Json } from './json.js';
import { block, type Row } from './layout.js';

/** GCP's ssh-keys attribute: one "user:key" per line. */
function gcpKeys(attribute: unknown): { user: string; key: string }[] {
  if (typeof attribute !== 'string') return [];
  return attribute
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.includes(':'))
    .map((line) => ({ user: line.slice(0, line.indexOf(':')), key: line.slice(line.indexOf(':') + 1) }));
}

const gcpKeyRows = (owner: unknown, where: string): Row[] =>
  gcpKeys(asObject(asObject(owner).attributes)['ssh-keys']).map(({ user, key }) => [`${show(user)} (${where})`, show(key)]);

function sshKeyRows(provider: ProviderName, system: Json): Row[] {
  switch (provider) {
    case 'ec2':
      return Object.entries(asObject(system['public-keys'])).map(([name, key]) => [show(name), show(key)]);
    case 'azure':
      return asArray(system.publicKeys).map((entry) => [show(asObject(entry).path), show(asObject(entry).keyData)]);
    case 'gcp':
      return [...gcpKeyRows(system, 'instance'), ...gcpKeyRows(system.project, 'project')];
  }
}

/** Key name (EC2), authorized_keys path (Azure) or "user (instance|project)" (GCP), then the key. */
export function sshKeysView(provider: ProviderName, system: unknown): string {
  const rows = sshKeyRows(provider, asObject(system));
  return rows.length > 0 ? block(rows) : 'no SSH keys in the instance metadata\n';
}

/** Credentials and the identity document: flat objects, shown field by field as the API has them. */
export function fieldsView(document: unknown): string {
  const rows = Object.entries(asObject(document)).map(([key, value]): Row => [show(key), show(value)]);
  return rows.length > 0 ? block(rows) : 'nothing in this document\n';
}

/** pkcs7, signature, rsa2048: the base64 text exactly as served, for openssl. */
export function signatureView(name: string, document: unknown): string {
  const text = asObject(document)[name];
  return typeof text === 'string' ? `${text.trimEnd()}\n` : '-\n';
}

export function projectView(system: unknown): string {
  const project = asObject(asObject(system).project);
  const users = new Set(gcpKeys(asObject(project.attributes)['ssh-keys']).map(({ user }) => user));
  return block([
    ['Project ID', show(project.projectId)],
    ['Numeric project ID', show(project.numericProjectId)],
    ['SSH key users', show([...users])],
  ]);
}
