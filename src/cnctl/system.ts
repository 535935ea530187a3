// `cnctl status system`: the instance facts each cloud's system document holds.
import type { ProviderName } from '../model.js';
import { asObject, lastSegment, show, strings, type Json } from './json.js';
import { block, type Row } from './layout.js';

/** EC2 keeps the metadata key names, so a label maps to one key. */
const EC2_KEYS: [label: string, key: string][] = [
  ['AMI ID', 'ami-id'],
  ['Instance ID', 'instance-id'],
  ['Instance type', 'instance-type'],
  ['Hostname', 'hostname'],
  ['Public hostname', 'public-hostname'],
  ['Availability zone', 'placement/availability-zone'],
  ['Region', 'placement/region'],
  ['MAC Address', 'mac'],
  ['Local IPv4', 'local-ipv4'],
  ['Public IPv4', 'public-ipv4'],
  ['Services domain', 'services/domain'],
];

function azureRows(system: Json): Row[] {
  // The image's URN, in the publisher:offer:sku:version form `az vm create --image` takes.
  const image = strings([system.publisher, system.offer, system.sku, system.version]);
  return [
    ['Environment', show(system.azEnvironment)],
    ['Location', show(system.location)],
    ['Name', show(system.name)],
    ['VM ID', show(system.vmId)],
    ['VM size', show(system.vmSize)],
    ['Subscription', show(system.subscriptionId)],
    ['Resource group', show(system.resourceGroupName)],
    ['Image', image.length > 0 ? image.join(':') : '-'],
    ['Security profile', show(system.securityProfile)],
  ];
}

function gcpRows(system: Json): Row[] {
  return [
    ['ID', show(system.id)],
    ['Name', show(system.name)],
    ['Hostname', show(system.hostname)],
    // Zone and machine type are paths inside the instance's own project: the last part says it all.
    ['Machine type', show(lastSegment(system.machineType))],
    ['Zone', show(lastSegment(system.zone))],
    // Images usually live in another project (debian-cloud), which is worth seeing.
    ['Image', show(system.image)],
    ['Project', show(asObject(system.project).projectId)],
    ['Scheduling', show(system.scheduling)],
  ];
}

export function systemView(provider: ProviderName, document: unknown): string {
  const system = asObject(document);
  switch (provider) {
    case 'ec2':
      return block(EC2_KEYS.map(([label, key]) => [label, show(system[key])]));
    case 'azure':
      return block(azureRows(system));
    case 'gcp':
      return block(gcpRows(system));
  }
}
