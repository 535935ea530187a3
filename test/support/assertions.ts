// Checks shared by end-to-end tests. They return a list of problems instead of throwing, so
// that `expect(problems).toEqual([])` shows every deviation at once in a readable diff.
import { expectedState, type ExpectedOptions } from './expected.js';
import { owned, type KernelSnapshot } from './kernel.js';
import { REMOTE, type World } from './world.js';

function diff(what: string, want: string[], got: string[]): string[] {
  return [
    ...want.filter((x) => !got.includes(x)).map((x) => `missing ${what}: ${x}`),
    ...got.filter((x) => !want.includes(x)).map((x) => `unexpected ${what}: ${x}`),
  ];
}

/**
 * Everything SPEC §5 asks for after a successful reconcile of the world's metadata:
 * links up (and GCP MTU), every metadata IPv4 on its link, exactly the expected proto 149
 * rules and routes, `ip route get REMOTE from A` through A's link and gateway for every A,
 * and the world's foreign state intact.
 */
export async function checkConfigured(world: World, o: ExpectedOptions = {}): Promise<string[]> {
  const snap = await world.snapshot();
  const want = expectedState(world.nics, o);
  const problems: string[] = [];
  for (const nic of world.nics) {
    const link = snap.links.find((l) => l.startsWith(`${nic.name} `));
    if (!link?.includes(' up ')) problems.push(`link ${nic.name} is not up: ${link}`);
    if (nic.mtu !== undefined && !link?.includes(` mtu ${nic.mtu} `)) problems.push(`link ${nic.name} mtu is not ${nic.mtu}: ${link}`);
  }
  for (const a of want.addresses) if (!snap.addresses.includes(a)) problems.push(`missing address: ${a}`);
  const mine = owned(snap);
  problems.push(...diff('proto 149 rule', want.rules, mine.rules), ...diff('proto 149 route', want.routes, mine.routes));
  problems.push(...(await checkRouteGet(world)));
  problems.push(...checkForeign(world, snap));
  return problems;
}

/** `ip route get REMOTE from A` leaves through A's link and that NIC's gateway, for every A. */
export async function checkRouteGet(world: World): Promise<string[]> {
  const problems: string[] = [];
  for (const nic of world.nics) {
    for (const a of nic.addresses) {
      try {
        const r = await world.routeGet(REMOTE, a);
        if (r.dev !== nic.name || r.gateway !== nic.gateway) {
          problems.push(`route get ${REMOTE} from ${a}: dev ${r.dev} via ${r.gateway}, want dev ${nic.name} via ${nic.gateway}`);
        }
      } catch (e) {
        problems.push(`route get ${REMOTE} from ${a}: ${(e as Error).message.split('\n').slice(-2).join(' ')}`);
      }
    }
  }
  return problems;
}

/** The foreign address, rule and routes of `foreign: true` are all still there. */
export function checkForeign(world: World, snap: KernelSnapshot): string[] {
  const f = world.foreign;
  if (!f) return [];
  return [
    ...(snap.addresses.includes(f.address) ? [] : [`foreign address gone: ${f.address}`]),
    ...(snap.rules.includes(f.rule) ? [] : [`foreign rule gone: ${f.rule}`]),
    ...f.routes.filter((r) => !snap.routes.includes(r)).map((r) => `foreign route gone: ${r}`),
  ];
}

/**
 * Snapshot comparison without the kernel's own derived routes (proto kernel local/broadcast
 * and prefix routes come and go with addresses): what a change added and removed.
 */
export function snapshotDelta(before: KernelSnapshot, after: KernelSnapshot): { added: string[]; removed: string[] } {
  const flat = (s: KernelSnapshot): string[] => [
    ...s.links.map((l) => `link ${l}`),
    ...s.addresses.map((a) => `address ${a}`),
    ...s.rules.map((r) => `rule ${r}`),
    ...s.routes.filter((r) => !r.endsWith(' proto kernel')).map((r) => `route ${r}`),
  ];
  const b = flat(before);
  const a = flat(after);
  return { added: a.filter((x) => !b.includes(x)), removed: b.filter((x) => !a.includes(x)) };
}
