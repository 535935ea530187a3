// `cnctl status` and `cnctl plan`: what the daemon itself reports about its work.
import { asArray, asObject, show } from './json.js';
import { block, columns } from './layout.js';

export function healthView(status: unknown): string {
  const document = asObject(status);
  const interfaces = asArray(document.interfaces).map(asObject);
  const applied = document.applied === undefined || document.applied === null ? undefined : asObject(document.applied);
  const summary = block([
    ['Provider', show(document.provider)],
    ['Interfaces', `${interfaces.length} managed`],
    ['Last refresh', show(document.lastRefresh)],
    ['Last error', show(document.lastError)],
    ['Applied', applied ? `${show(applied.addresses)} addresses, ${show(applied.routes)} routes, ${show(applied.rules)} rules` : '-'],
  ]);
  if (interfaces.length === 0) return summary;
  const rows = interfaces.map((nic) => [show(nic.name), show(nic.mac), show(nic.table), nic.policyRouted === true ? 'yes' : 'no', show(nic.addresses)]);
  return `${summary}\n${columns(['NAME', 'MAC', 'TABLE', 'POLICY ROUTING', 'ADDRESSES'], rows)}`;
}

/** The `ip -batch` script the next reconcile would run, ready for `ip -batch -`. */
export function planView(plan: unknown): string {
  const script = asObject(plan).script;
  return typeof script === 'string' && script !== '' ? script : 'nothing to change\n';
}

/** Plan notices go to stderr, so that stdout stays a script. */
export const planNotices = (plan: unknown): string[] => asArray(asObject(plan).notices).map(show);
