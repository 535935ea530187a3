// Chooses the metadata client for a provider and the transport it talks through.
import type { InstanceMetadata, ProviderName } from '../model.js';
import { AzureClient } from './azure.js';
import { Ec2Client } from './ec2.js';
import { GcpClient } from './gcp.js';
import type { Transport } from './http.js';

export interface MetadataClient {
  /**
   * Reads the network metadata; with `documents`, also the provider's system and display
   * documents (EC2 fetches those separately, so the daemon asks for them less often).
   * Throws ImdsError when the answer cannot be trusted as a whole.
   */
  fetchMetadata(options: { documents: boolean }): Promise<InstanceMetadata>;
  /** GCP: a long poll that resolves with the next different document. */
  waitForChange?(): Promise<InstanceMetadata>;
}

export const DEFAULT_ENDPOINTS: Record<ProviderName, string> = {
  ec2: 'http://169.254.169.254',
  azure: 'http://169.254.169.254',
  gcp: 'http://metadata.google.internal',
};

export function createClient(provider: ProviderName, transport: Transport): MetadataClient {
  switch (provider) {
    case 'ec2':
      return new Ec2Client(transport);
    case 'azure':
      return new AzureClient(transport);
    case 'gcp':
      return new GcpClient(transport);
  }
}
