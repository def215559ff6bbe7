// Constants of the datapath as bpf/include/datapath_consts.h and datapath_structs.h define them.
// Written once here; test/unit/datapath-consts.test.ts parses the C headers and fails on any
// difference, so the two never drift.

/** Drop-counter array size; every reason number stays below it. */
export const DROP_REASON_MAX = 64;

/** Default map capacities (entries); the loader's `install --cap` overrides them. */
export const CAPACITY = {
  LB_SERVICES_MAX: 1 << 20,
  LB_BACKENDS_MAX: 1 << 21,
  LB_MAGLEV_SERVICES_MAX: 1 << 14,
  LB_AFFINITY_MAX: 1 << 16,
  LB_SOCK_REVNAT_MAX: 1 << 18,
  CT_MAX: 1 << 18,
  CT6_MAX: 1 << 16,
  LB6_SERVICES_MAX: 1 << 18,
  LB6_BACKENDS_MAX: 1 << 19,
  LB6_AFFINITY_MAX: 1 << 14,
  LB6_SOCK_REVNAT_MAX: 1 << 16,
  FRAG_MAX: 8192,
  ENDPOINTS_MAX: 1 << 16,
  ENDPOINTS6_MAX: 1 << 16,
  IPCACHE_MAX: 1 << 16,
  IPCACHE6_MAX: 1 << 16,
  POLICY_MAX: 1 << 18,
  LB_SVC_COUNTERS_MAX: 1 << 20,
  EVENTS_RINGBUF_BYTES: 256 * 1024,
} as const;

/** IPv6 extension headers the tc parser walks before refusing the packet (DROP_IPV6_EXTHDR_LIMIT). */
export const IPV6_MAX_EXTHDRS = 6;

/** Maglev table size M per service (a prime). */
export const LB_MAGLEV_M = 1021;

export const SVC_F_MAGLEV = 1 << 0;
export const SVC_F_AFFINITY = 1 << 1;
/** An external address (NodePort, load balancer IP, externalIP): remote backends are SNATed. */
export const SVC_F_EXTERNAL = 1 << 2;
/** externalTrafficPolicy / internalTrafficPolicy Local: local backends only; none drops NO_LOCAL_BACKEND. */
export const SVC_F_LOCAL_ONLY = 1 << 3;
/** struct lb_backend.flags: the backend runs on another node. */
export const BE_F_REMOTE = 1 << 0;

export const AFFINITY_CLIENT_IP = 0;
export const AFFINITY_CLIENT_NETNS = 1;

export const CT_F_DNAT = 1 << 0;
export const CT_F_REVNAT = 1 << 1;
export const CT_F_REPLY = 1 << 2;
export const CT_F_SNAT = 1 << 4;
export const CT_F_FIB = 1 << 5;
/** TCP state of a conntrack entry (bpf/lib/ct_gc.h): an ACK seen / a FIN or RST seen. */
export const CT_F_TCP_ESTABLISHED = 1 << 8;
export const CT_F_TCP_CLOSING = 1 << 9;

/** Wildcard remote identity in policy keys. */
export const IDENTITY_ANY = 0;
export const IDENTITY_HOST = 1;
/** Any address no endpoint or ipcache prefix claims. */
export const IDENTITY_WORLD = 2;
/** Any IPv6 address no endpoint or ipcache6 prefix claims (cilium's world-ipv6): a rule for 0.0.0.0/0 does not open IPv6. */
export const IDENTITY_WORLD_IPV6 = 10;
/** First identity userspace may allocate. */
export const IDENTITY_USER_MIN = 256;

export const EP_F_ENFORCE_INGRESS = 1 << 0;
export const EP_F_ENFORCE_EGRESS = 1 << 1;

export const POLICY_INGRESS = 0;
export const POLICY_EGRESS = 1;
export const POLICY_ALLOW = 1;
export const POLICY_DENY = 2;

export const POLICY_PREFIX_ANY_PROTO = 72;
export const POLICY_PREFIX_ANY_PORT = 80;
export const POLICY_PREFIX_FULL = 96;

export const HOOK_TC = 1;
export const HOOK_SOCK_CONNECT = 2;
export const HOOK_SOCK_SENDMSG = 3;
/** tc, an IPv6 packet: a struct drop_event6 record (the IPv6 addresses follow the drop_event). */
export const HOOK_TC6 = 4;
/** The IPv6 socket hooks: a pure IPv6 flow is a struct drop_event6 record, an IPv4-mapped one (::ffff:a.b.c.d) a drop_event with its IPv4 addresses. */
export const HOOK_SOCK_CONNECT6 = 5;
export const HOOK_SOCK_SENDMSG6 = 6;

/** struct drop_event.verdict: the event is a drop (0, as every event of older datapaths) or a new forwarded flow. */
export const EVENT_VERDICT_DROPPED = 0;
export const EVENT_VERDICT_FORWARDED = 1;

/** The flow hash seed (bpf/include/lb_hash.h). */
export const LB_HASH_SEED = 0x5eed1b7e;

/** sizeof() of the structs in datapath_structs.h that the control plane encodes or decodes. */
export const STRUCT_SIZE = {
  lb_svc_key: 8,
  lb_service: 16,
  lb_backend_key: 8,
  lb_backend: 12,
  lb_affinity_key: 16,
  lb_affinity: 16,
  lb_sock_revnat_key: 16,
  lb_sock_revnat: 12,
  ct_key: 16,
  ct_entry: 32,
  node_cfg: 8,
  node_cfg6: 20,
  frag_key: 12,
  policy_key: 16,
  policy_entry: 8,
  drop_event: 56,
  drop_event6: 88,
  svc_counter: 24,
  endpoint_info: 8,
  ipcache_key: 8,
  ipcache_entry: 4,
  endpoint6_key: 16,
  ipcache6_key: 20,
  ct6_key: 40,
  ct6_entry: 64,
  lb6_svc_key: 20,
  lb6_backend: 24,
  lb6_affinity_key: 24,
  lb6_sock_revnat_key: 32,
  lb6_sock_revnat: 24,
  lb_maglev_table: 2 * LB_MAGLEV_M,
} as const;

/** The maps the control plane writes (BPF map names, bpf/lib/maps.h). */
export const MAPS = ['services', 'backends', 'maglev', 'endpoints', 'ipcache', 'policy', 'endpoints6', 'ipcache6', 'node_cfg', 'services6', 'backends6', 'node_cfg6'] as const;
export type MapName = (typeof MAPS)[number];

/** Every map of the datapath, for dump and status. */
export const ALL_MAPS = [...MAPS, 'affinity', 'sock_revnat', 'conntrack', 'frags', 'drop_counters', 'svc_counters', 'events_lost', 'events', 'conntrack6', 'affinity6', 'sock_revnat6'] as const;

export const IPPROTO = { icmp: 1, tcp: 6, udp: 17, sctp: 132 } as const;
export type Protocol = keyof typeof IPPROTO;
