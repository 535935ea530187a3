// Cloud detection from DMI (SPEC §4). No network: reading sysfs cannot hang or be spoofed remotely.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ProviderName } from './model.js';

export const DEFAULT_DMI_DIR = '/sys/class/dmi/id';
const AZURE_ASSET_TAG = '7783-7084-3265-9085-8269-3286-77';

function readDmi(dir: string, name: string): string {
  try {
    return readFileSync(join(dir, name), 'utf8').trim();
  } catch {
    return ''; // absent or root-only: it simply says nothing
  }
}

export function detectProvider(dir: string): ProviderName | undefined {
  const dmi = (name: string) => readDmi(dir, name);
  if (
    dmi('sys_vendor') === 'Amazon EC2' ||
    dmi('product_version').toLowerCase().includes('amazon') ||
    dmi('bios_version').toLowerCase().includes('amazon') ||
    dmi('product_uuid').toLowerCase().startsWith('ec2')
  ) {
    return 'ec2';
  }
  if (dmi('sys_vendor') === 'Microsoft Corporation' && dmi('chassis_asset_tag') === AZURE_ASSET_TAG) return 'azure';
  if (dmi('product_name').includes('Google Compute Engine')) return 'gcp';
  return undefined;
}
