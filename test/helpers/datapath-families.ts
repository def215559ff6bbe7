// The datapath's metric families as dashboards and alerts know them: name, type and HELP text, in
// output order. The loader renders them (bpf/loader/metrics.c); tests pin its output to this list.
export const DATAPATH_FAMILIES: readonly { name: string; type: 'gauge' | 'counter'; help: string }[] = [
  { name: 'prep_node_datapath_up', type: 'gauge', help: 'Whether the prep-node datapath is installed (programs loaded, maps pinned).' },
  { name: 'prep_node_datapath_drops_total', type: 'counter', help: 'Packets dropped (or socket calls rejected) by the datapath, by reason (bpf/include/drop_reasons.h).' },
  { name: 'prep_node_datapath_drop_bytes_total', type: 'counter', help: 'Bytes of the packets dropped by the datapath, by reason (0 for rejected socket calls).' },
  { name: 'prep_node_datapath_forwarded_packets_total', type: 'counter', help: 'Packets the tc program forwarded to or from a service backend (NATed, both directions), by service.' },
  { name: 'prep_node_datapath_forwarded_bytes_total', type: 'counter', help: 'Bytes of the packets the tc program forwarded to or from a service backend, by service.' },
  { name: 'prep_node_datapath_service_connections_total', type: 'counter', help: 'Connections translated to a service backend at the socket (connect(), new socket-backend pairs of sendmsg()); their bytes are not counted.' },
  { name: 'prep_node_datapath_events_lost_total', type: 'counter', help: 'Events (drops, forwarded flows) the datapath could not queue because the ring buffer was full.' },
  { name: 'prep_node_datapath_map_entries', type: 'gauge', help: 'Entries in each datapath map (arrays: their size).' },
  { name: 'prep_node_datapath_map_capacity', type: 'gauge', help: 'max_entries of each datapath map (ring buffer: bytes).' },
  { name: 'prep_node_datapath_program_attached', type: 'gauge', help: 'Whether each datapath program is attached where the install put it.' },
];

/** The HELP and TYPE lines of the families, in order. */
export function familyHeaders(): string[] {
  return DATAPATH_FAMILIES.flatMap((f) => [`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`]);
}
