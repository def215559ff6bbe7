// datapath.memory: the node's memory against what the datapath's BPF maps take at the capacities it
// loads them with. Since 5.11 map memory is charged to the loader's memory cgroup instead of
// RLIMIT_MEMLOCK, and it is kernel memory: never swapped, never reclaimed. Preallocated maps (the LRU
// ones, the per-CPU arrays, the ring buffer and every hash's bucket array) take theirs at load; the
// BPF_F_NO_PREALLOC hashes and the LPM tries grow per entry up to max_entries (bpf/lib/maps.h).
import type { Check, Finding } from './types.js';
import { nodeFacts } from '../probes/node-facts.js';
import { CAPACITY, STRUCT_SIZE } from '../datapath/consts.js';

export type Capacity = { readonly [K in keyof typeof CAPACITY]: number };

// kernel/bpf/hashtab.c: struct bucket is an hlist_nulls_head and a raw spinlock (16 bytes), one per
// max_entries rounded up to a power of two; struct htab_elem is 48 bytes on 64-bit (hash node 16,
// lru node 24, hash 4, key aligned to 8); key and value are each rounded up to 8; a per-CPU value sits
// behind a pointer, once per possible CPU.
const BUCKET = 16;
const HTAB_ELEM = 48;
// kernel/bpf/lpm_trie.c: struct lpm_trie_node is an rcu_head, two child pointers, prefixlen and
// flags (40 bytes), then the key's data (key size minus its 4-byte prefixlen) and the value. A trie of
// n prefixes has at most n-1 intermediate nodes, which carry no value.
const LPM_NODE = 40;
// Struct sizes not in STRUCT_SIZE (bpf/include/datapath_structs.h): frag_ports, drop_counter.
const FRAG_PORTS = 4;
const DROP_COUNTER = 16;
const PAGE = 4096;

const up8 = (n: number) => Math.ceil(n / 8) * 8;
const pow2 = (n: number) => 2 ** Math.ceil(Math.log2(Math.max(1, n)));
// A non-preallocated element comes from the BPF memory allocator's kmalloc size classes.
const KMALLOC = [8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096];
const kmalloc = (n: number) => KMALLOC.find((c) => c >= n) ?? Math.ceil(n / PAGE) * PAGE;

export interface MapMemory {
  map: string;
  /** Bytes taken when the map is created. */
  atLoad: number;
  /** Bytes taken when it holds max_entries. */
  atCapacity: number;
}

function hash(map: string, entries: number, key: number, value: number, o: { prealloc: boolean; percpu?: number }): MapMemory {
  const buckets = BUCKET * pow2(entries);
  const elem = o.percpu === undefined ? HTAB_ELEM + up8(key) + up8(value) : HTAB_ELEM + up8(key) + 8;
  const perCpu = o.percpu === undefined ? 0 : up8(value) * o.percpu;
  const each = (o.prealloc ? elem : kmalloc(elem)) + perCpu;
  const full = buckets + entries * each;
  return { map, atLoad: o.prealloc ? full : buckets, atCapacity: full };
}

function lpm(map: string, entries: number, key: number, value: number): MapMemory {
  const leaf = kmalloc(LPM_NODE + key - 4 + value);
  const inner = kmalloc(LPM_NODE + key - 4);
  return { map, atLoad: 0, atCapacity: entries * leaf + Math.max(0, entries - 1) * inner };
}

function percpuArray(map: string, entries: number, value: number, cpus: number): MapMemory {
  const bytes = entries * up8(value) * cpus;
  return { map, atLoad: bytes, atCapacity: bytes };
}

/**
 * The one estimate of the datapath's map memory (bytes) at the given capacities on a node with `cpus`
 * possible CPUs. Mirrors bpf/lib/maps.h: a map's type, flags, key and value there decide its line here.
 */
export function datapathMapMemory(cap: Capacity, cpus: number): { atLoad: number; atCapacity: number; maps: MapMemory[] } {
  const S = STRUCT_SIZE;
  const maps: MapMemory[] = [
    hash('services', cap.LB_SERVICES_MAX, S.lb_svc_key, S.lb_service, { prealloc: false }),
    hash('backends', cap.LB_BACKENDS_MAX, S.lb_backend_key, S.lb_backend, { prealloc: false }),
    hash('maglev', cap.LB_MAGLEV_SERVICES_MAX, 4, S.lb_maglev_table, { prealloc: false }),
    hash('affinity', cap.LB_AFFINITY_MAX, S.lb_affinity_key, S.lb_affinity, { prealloc: true }),
    hash('sock_revnat', cap.LB_SOCK_REVNAT_MAX, S.lb_sock_revnat_key, S.lb_sock_revnat, { prealloc: true }),
    hash('conntrack', cap.CT_MAX, S.ct_key, S.ct_entry, { prealloc: true }),
    hash('frags', cap.FRAG_MAX, S.frag_key, FRAG_PORTS, { prealloc: true }),
    hash('endpoints', cap.ENDPOINTS_MAX, 4, S.endpoint_info, { prealloc: false }),
    lpm('ipcache', cap.IPCACHE_MAX, S.ipcache_key, S.ipcache_entry),
    hash('endpoints6', cap.ENDPOINTS6_MAX, S.endpoint6_key, S.endpoint_info, { prealloc: false }),
    lpm('ipcache6', cap.IPCACHE6_MAX, S.ipcache6_key, S.ipcache_entry),
    hash('conntrack6', cap.CT6_MAX, S.ct6_key, S.ct6_entry, { prealloc: true }),
    hash('services6', cap.LB6_SERVICES_MAX, S.lb6_svc_key, S.lb_service, { prealloc: false }),
    hash('backends6', cap.LB6_BACKENDS_MAX, S.lb_backend_key, S.lb6_backend, { prealloc: false }),
    hash('affinity6', cap.LB6_AFFINITY_MAX, S.lb6_affinity_key, S.lb_affinity, { prealloc: true }),
    hash('sock_revnat6', cap.LB6_SOCK_REVNAT_MAX, S.lb6_sock_revnat_key, S.lb6_sock_revnat, { prealloc: true }),
    lpm('policy', cap.POLICY_MAX, S.policy_key, S.policy_entry),
    hash('node_cfg', 1, 4, S.node_cfg, { prealloc: true }),
    hash('node_cfg6', 1, 4, S.node_cfg6, { prealloc: true }),
    percpuArray('drop_counters', 64, DROP_COUNTER, cpus),
    hash('svc_counters', cap.LB_SVC_COUNTERS_MAX, 4, S.svc_counter, { prealloc: false, percpu: cpus }),
    percpuArray('events_lost', 1, 8, cpus),
    // kernel/bpf/ringbuf.c: the data pages plus one page of header (consumer/producer pages).
    { map: 'events', atLoad: cap.EVENTS_RINGBUF_BYTES + 2 * PAGE, atCapacity: cap.EVENTS_RINGBUF_BYTES + 2 * PAGE },
  ];
  return { atLoad: maps.reduce((a, m) => a + m.atLoad, 0), atCapacity: maps.reduce((a, m) => a + m.atCapacity, 0), maps };
}

const SOURCE =
  "estimate from kernel/bpf/hashtab.c, lpm_trie.c and ringbuf.c element layouts over bpf/lib/maps.h at the capacities the loader picks for the node's RAM (src/datapath/consts.ts CAPACITY, scaled below 4 GiB); map memory is unswappable kernel memory charged to the loader's memory cgroup (Linux >= 5.11)";

// bpf/loader/install.c size_by_ram: below DP_RAM_REF_MIB every hash, LRU and LPM map gets
// default x RAM / DP_RAM_REF_MIB entries, rounded down to a power of two, at least DP_RAM_MIN_ENTRIES.
const RAM_REF_MIB = 4096;
const RAM_MIN_ENTRIES = 1024;

/** The capacities the loader's install picks on a node with this much RAM (no --cap). */
export function capacityForRam(memMiB: number): Capacity {
  if (memMiB >= RAM_REF_MIB) return CAPACITY;
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(CAPACITY)) {
    if (k === 'EVENTS_RINGBUF_BYTES') {
      out[k] = v;
      continue;
    }
    const n = Math.floor((v * memMiB) / RAM_REF_MIB);
    let p2 = 1;
    while (p2 * 2 <= n) p2 *= 2;
    out[k] = Math.min(v, Math.max(p2, RAM_MIN_ENTRIES));
  }
  return out as Capacity;
}

export const datapathMemory: Check = {
  id: 'datapath.memory',
  title: "Memory for the datapath's maps",
  async run(ctx): Promise<Finding> {
    const f = await nodeFacts(ctx, ctx.profile.preflight.diskPath);
    // What the loader's install picks on this node's RAM (--cap overrides; the profile has no capacities yet).
    return judgeDatapathMemory(f.memTotalKiB, f.cpus, f.memTotalKiB === null ? CAPACITY : capacityForRam(Math.floor(f.memTotalKiB / 1024)), ctx.profile.preflight.datapathMemory);
  },
};

const mib = (b: number) => `${(b / 1024 / 1024).toFixed(b < 10 * 1024 * 1024 ? 1 : 0)} MiB`;

/** The verdict on MemTotal against the maps' estimate; pure. */
export function judgeDatapathMemory(memTotalKiB: number | null, cpus: number | null, cap: Capacity, limits: { warnPercent: number; failPercent: number }): Finding {
  const expected = `maps preallocated at load ≤ ${limits.failPercent} % of RAM, at full capacity ≤ ${limits.warnPercent} % (preflight.datapathMemory)`;
  if (memTotalKiB === null || cpus === null) return { status: 'error', observed: 'MemTotal or the CPU count unreadable', expected, detail: SOURCE };
  const est = datapathMapMemory(cap, cpus);
  const ram = memTotalKiB * 1024;
  const pct = (b: number) => (100 * b) / ram;
  const biggest = [...est.maps].sort((a, b) => b.atCapacity - a.atCapacity).slice(0, 3).map((m) => `${m.map} ${mib(m.atCapacity)}`).join(', ');
  const observed = `${mib(est.atLoad)} at load (${pct(est.atLoad).toFixed(1)} %), ${mib(est.atCapacity)} full (${pct(est.atCapacity).toFixed(1)} %) of ${mib(ram)}; largest: ${biggest}`;
  const remedy = 'give the node more RAM, or load the datapath with smaller capacities (prep-node datapath install --cap conntrack=N,services=N)';
  if (pct(est.atLoad) > limits.failPercent) return { status: 'fail', observed, expected, remedy, detail: SOURCE };
  if (pct(est.atCapacity) > limits.warnPercent) return { status: 'warn', observed, expected, remedy, detail: `the maps fit at load but would crowd out pods when full. ${SOURCE}` };
  return { status: 'pass', observed, expected, detail: SOURCE };
}
