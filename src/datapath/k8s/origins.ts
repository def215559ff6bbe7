// Who each datapath object came from (a Pod, a Service port, a policy rule), for observe and dry runs.

/** Who a datapath object came from, for observe and dry runs. */
export interface Origins {
  /** endpoint name → "namespace/pod" */
  endpoints: Map<string, string>;
  /** service name → "namespace/service:port (ClusterIP)" */
  services: Map<string, string>;
  /** "policy/direction/index" → the manifest's policy and rule */
  rules: Map<string, { policy: string; rule: string }>;
  /** policy name → the manifest's policy */
  policies: Map<string, string>;
}

export const newOrigins = (): Origins => ({ endpoints: new Map(), services: new Map(), rules: new Map(), policies: new Map() });
