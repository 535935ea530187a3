// Renders a plan as one `ip -batch` script: one line per change, in the plan's order,
// every route and rule tagged proto 149 so that ownership can be read back from the kernel.
import { CLOUD_NETWORK_PROTO, RTN_LOCAL, SCOPE_HOST, SCOPE_LINK, TABLE_LOCAL, TABLE_MAIN } from './kernel.js';
import type { Change, Route, Rule } from './plan.js';

const TABLE_NAMES: Record<number, string> = { [TABLE_MAIN]: 'main', [TABLE_LOCAL]: 'local' };
const tableName = (table: number) => TABLE_NAMES[table] ?? String(table);
const SCOPE_NAMES: Record<number, string> = { [SCOPE_LINK]: 'link', [SCOPE_HOST]: 'host' };

function routeArgs(route: Route): string {
  const dst = route.dst === '0.0.0.0/0' ? 'default' : route.dst.endsWith('/32') ? route.dst.slice(0, -3) : route.dst;
  const words = [route.type === RTN_LOCAL ? `local ${dst}` : dst];
  if (route.gateway) words.push(`via ${route.gateway}`);
  // A proto 149 route without a device (blackhole, unreachable) is deleted by table and destination.
  if (route.dev) words.push(`dev ${route.dev}`);
  // Local routes get scope host from the kernel by default; only link scope needs saying.
  if (route.scope === SCOPE_LINK) words.push(`scope ${SCOPE_NAMES[route.scope]}`);
  if (route.prefsrc) words.push(`src ${route.prefsrc}`);
  words.push(`table ${tableName(route.table)}`, `proto ${CLOUD_NETWORK_PROTO}`);
  if (route.onlink) words.push('onlink');
  return words.join(' ');
}

function ruleArgs(rule: Rule): string {
  const words = [`priority ${rule.priority}`];
  if (rule.src) words.push(`from ${rule.src.endsWith('/32') ? rule.src.slice(0, -3) : rule.src}`);
  words.push(`lookup ${tableName(rule.table)}`);
  if (rule.suppressPrefixLength !== undefined) words.push(`suppress_prefixlength ${rule.suppressPrefixLength}`);
  words.push(`proto ${CLOUD_NETWORK_PROTO}`);
  return words.join(' ');
}

export function renderChange(change: Change): string {
  switch (change.kind) {
    case 'link-up':
      return `link set dev ${change.dev} up`;
    case 'link-mtu':
      return `link set dev ${change.dev} mtu ${change.mtu}`;
    case 'address-add':
      return `address add ${change.address.cidr} dev ${change.address.dev}${change.address.noprefixroute ? ' noprefixroute' : ''}`;
    case 'address-del':
      return `address del ${change.address.cidr} dev ${change.address.dev}`;
    case 'route-replace':
      return `route replace ${routeArgs(change.route)}`;
    case 'route-del':
      return `route del ${routeArgs(change.route)}`;
    case 'rule-add':
      return `rule add ${ruleArgs(change.rule)}`;
    case 'rule-del':
      return `rule del ${ruleArgs(change.rule)}`;
  }
}

/** The batch script for `ip -force -batch -`; empty when there is nothing to change. */
export function renderScript(changes: Change[]): string {
  return changes.map((change) => `${renderChange(change)}\n`).join('');
}
