// The typed data that flows through the pipeline. Providers produce InstanceMetadata;
// everything after them trusts it, because it was validated when it was parsed.
import type { Cidr } from './net.js';

export type ProviderName = 'ec2' | 'azure' | 'gcp';
export const PROVIDERS: readonly ProviderName[] = ['ec2', 'azure', 'gcp'];

/** One network interface as the cloud describes it, already validated. */
export interface InterfaceMetadata {
  /** Lower case, colon separated. */
  mac: string;
  /** NIC key n of SPEC §5: the routing table is RouteTableBase + key. */
  key: number;
  /** Private IPv4 addresses, primary first. */
  addresses: string[];
  /** Prefix length the primary address carries on the link (the subnet's; 32 on GCP). */
  primaryPrefixLength: number;
  subnet: Cidr;
  gateway: string;
  /**
   * How table T reaches the gateway: through the subnet route with the primary as source
   * (EC2, Azure), or through a host route to the gateway (GCP, whose addresses are /32).
   */
  linkRoute: 'subnet' | 'gateway';
  mtu?: number;
  /** CIDRs the VM must accept as local without holding them as addresses (GCP alias ranges, forwarded IPs). */
  localRoutes: string[];
}

/** A metadata entry that failed validation: its interface is left exactly as it is. */
export interface RejectedInterface {
  /** Present when the MAC itself was readable. */
  mac?: string;
  /**
   * The entry's MAC cannot be trusted to say which interface it describes (a MAC listed twice:
   * one of those entries belongs to another interface). Like a missing MAC, it makes every
   * interface absent from the metadata uncertain.
   */
  ambiguous?: boolean;
  reason: string;
}

/** Provider documents kept for the API and the state directory, as the cloud sent them. */
export interface ProviderDocuments {
  system: unknown;
  network: unknown;
  /** Each interface's own part of `network`, by normalized MAC. */
  interfaces?: Record<string, unknown>;
  /** EC2 only: identity document and its signatures, by name (document, pkcs7, signature, rsa2048). */
  identity?: Record<string, string>;
  /** EC2 only: IAM role credentials as sent (redacted before they are served). */
  credentials?: unknown;
}

export interface InstanceMetadata {
  provider: ProviderName;
  interfaces: InterfaceMetadata[];
  rejected: RejectedInterface[];
  documents: ProviderDocuments;
}
