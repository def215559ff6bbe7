// metrics: the exposition text from a real loader's `status` and `dump drop_counters` (recorded by
// test/kernel/datapath-k8s.test.ts), checked with a strict text-format parser; the awk program the
// node-side textfile writer runs gives byte for byte the same text from the same input; and the
// parser itself refuses malformed expositions (a test that cannot fail is not a test).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { StatusDoc } from '../../src/datapath/loader.js';
import { DROP_REASONS } from '../../src/datapath/drop-reasons.js';
import { escapeLabel, metricsAwk, parseDropCounters, parseSvcCounters, renderMetrics, textfileScript } from '../../src/datapath/metrics.js';
import { compileState } from '../../src/datapath/compile.js';
import { loadDesired } from '../../src/datapath/k8s/index.js';
import { buildNames } from '../../src/datapath/observe.js';
import { parsePrometheusText } from '../helpers/prometheus-text.js';

const FIX = (p: string) => readFileSync(fileURLToPath(new URL(`../../../test/fixtures/k8s/${p}`, import.meta.url)), 'utf8');
const STATUS_LINE = FIX('status-installed.json').trim();
const DUMP = FIX('drop-counters.dump');
const status = StatusDoc.parse(JSON.parse(STATUS_LINE));

test('drop_counters dump: reason → packets and bytes (two little-endian u64 words)', () => {
  const c = parseDropCounters(DUMP);
  assert.equal(c.size, 64);
  assert.deepEqual(c.get(1), { packets: 4n, bytes: 296n });
  assert.deepEqual(c.get(2), { packets: 2n, bytes: 148n });
  assert.deepEqual(c.get(3), { packets: 0n, bytes: 0n });
});

test('the exposition parses strictly: HELP and TYPE for every family, every reason, maps and programs', () => {
  const text = renderMetrics(status, DUMP);
  const m = parsePrometheusText(text);
  for (const f of m.values()) {
    assert.ok(f.help && f.type, `${f.name} has HELP and TYPE`);
    if (f.type === 'counter') assert.match(f.name, /_total$/);
  }
  assert.equal(m.get('prep_node_datapath_up')!.samples[0]!.value, 1);
  const drops = m.get('prep_node_datapath_drops_total')!;
  assert.deepEqual(
    drops.samples.map((s) => s.labels.reason),
    DROP_REASONS.map((r) => r.name),
  );
  assert.equal(drops.samples.find((s) => s.labels.reason === 'POLICY_DENY')!.value, 4);
  assert.equal(drops.samples.find((s) => s.labels.reason === 'POLICY_DENY')!.labels.code, '1');
  assert.equal(m.get('prep_node_datapath_drop_bytes_total')!.samples.find((s) => s.labels.reason === 'POLICY_DEFAULT_DENY')!.value, 148);
  assert.equal(m.get('prep_node_datapath_events_lost_total')!.samples[0]!.value, 0);
  assert.equal(m.get('prep_node_datapath_map_entries')!.samples.find((s) => s.labels.map === 'endpoints')!.value, 3);
  assert.equal(m.get('prep_node_datapath_map_entries')!.samples.find((s) => s.labels.map === 'events'), undefined, 'the ring buffer has no entry count');
  assert.equal(m.get('prep_node_datapath_map_capacity')!.samples.find((s) => s.labels.map === 'events')!.value, 262144);
  assert.equal(m.get('prep_node_datapath_program_attached')!.samples.length, 7);
});

test('not installed: only up 0', () => {
  const text = renderMetrics(StatusDoc.parse({ installed: false, programs: [], maps: [], drops: {} }), '');
  assert.equal(text, '# HELP prep_node_datapath_up Whether the prep-node datapath is installed (programs loaded, maps pinned).\n# TYPE prep_node_datapath_up gauge\nprep_node_datapath_up 0\n');
  assert.equal(parsePrometheusText(text).get('prep_node_datapath_up')!.samples[0]!.value, 0);
});

function awk(input: string): string {
  const r = spawnSync('awk', [metricsAwk()], { input, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

test('the textfile writer (awk on the node) prints exactly what renderMetrics prints', () => {
  assert.equal(awk(`${STATUS_LINE}\n${DUMP}`), renderMetrics(status, DUMP));
  assert.equal(awk('{"installed":false,"kernel":"6.1.0","programs":[],"maps":[],"drops":{},"set_retval":true,"bpffs":true}\n'), renderMetrics(StatusDoc.parse({ installed: false }), ''));
  // label values with quotes and backslashes, large counters
  const odd = STATUS_LINE.replace('"attach":"tc/ingress sw-fe"', '"attach":"tc/ingress a\\"b\\\\c"');
  const big = DUMP.replace(/^01000000 .*$/m, '01000000 ffffffffffff0f00ffffffffffff0f00');
  const oddStatus = StatusDoc.parse(JSON.parse(odd));
  assert.equal(awk(`${odd}\n${big}`), renderMetrics(oddStatus, big));
  assert.match(renderMetrics(oddStatus, big), /attach="tc\/ingress a\\"b\\\\c"/);
  assert.match(renderMetrics(oddStatus, big), /drops_total\{reason="POLICY_DENY",code="1"\} 4503599627370495$/m);
  assert.equal(escapeLabel('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
});

/** The shop's names index, and a svc_counters dump (fixture: service 0x0badf00d, 77) with the shop service's id. */
async function shopCounters() {
  const d = await loadDesired(fileURLToPath(new URL('../../../test/fixtures/k8s/shop', import.meta.url)));
  const c = compileState(d.state);
  const names = buildNames(d.state, c, d.origins, 'shop', new Date('2025-01-01T00:00:00Z'));
  const id = [...c.serviceIds.values()][0]!;
  const le = Buffer.alloc(4);
  le.writeUInt32LE(id);
  return { names, id, dump: FIX('svc-counters.dump').replace('0df0ad0b', le.toString('hex')) };
}

test('svc_counters dump: svc_id → packets, bytes, connections (three little-endian u64 words), in dump order', () => {
  const c = parseSvcCounters(FIX('svc-counters.dump') + DUMP);
  assert.deepEqual(c, [
    { svcId: 0x0badf00d, packets: 12n, bytes: 1530n, connections: 3n },
    { svcId: 77, packets: 0n, bytes: 0n, connections: 5n },
  ]);
});

test('forwarded packets, bytes and connections by service, named from the index; unknown ids have service=""', async () => {
  const { names, id, dump } = await shopCounters();
  const m = parsePrometheusText(renderMetrics(status, DUMP, dump, names));
  const pk = m.get('prep_node_datapath_forwarded_packets_total')!;
  assert.equal(pk.type, 'counter');
  assert.deepEqual(pk.samples.map((s) => [s.labels.service, s.labels.svc_id, s.value]), [
    ['shop/backend:http (ClusterIP 198.18.3.10:80/tcp)', String(id), 12],
    ['', '77', 0],
  ]);
  assert.equal(m.get('prep_node_datapath_forwarded_bytes_total')!.samples[0]!.value, 1530);
  assert.deepEqual(m.get('prep_node_datapath_service_connections_total')!.samples.map((s) => s.value), [3, 5]);
  // no counters yet (or an older install): the families are there, empty
  const empty = parsePrometheusText(renderMetrics(status, DUMP));
  assert.equal(empty.get('prep_node_datapath_forwarded_packets_total')?.samples.length ?? 0, 0);
});

test('the textfile writer names services from the index line exactly as renderMetrics does', async () => {
  const { names, dump } = await shopCounters();
  const line = JSON.stringify(names);
  assert.equal(awk(`${STATUS_LINE}\n${line}\n${DUMP}${dump}`), renderMetrics(status, DUMP, dump, names));
  assert.equal(awk(`${STATUS_LINE}\n${DUMP}${dump}`), renderMetrics(status, DUMP, dump, null));
  // a name with a quote and a backslash: JSON's escaping is the exposition format's
  const odd = structuredClone(names);
  for (const k of Object.keys(odd.services)) odd.services[k]!.name = 'ns/a"b\\c';
  const text = renderMetrics(status, DUMP, dump, odd);
  assert.equal(awk(`${STATUS_LINE}\n${JSON.stringify(odd)}\n${DUMP}${dump}`), text);
  assert.match(text, /forwarded_packets_total\{service="ns\/a\\"b\\\\c",svc_id="\d+"\} 12$/m);
  parsePrometheusText(text);
});

test('the writer script is valid sh and writes through a temporary file', () => {
  const s = textfileScript({ bin: '/var/lib/prep-node/bin/prep-node-dp-abc', dir: "/var/lib/node_exporter/text file's", intervalSeconds: 15 });
  assert.equal(spawnSync('sh', ['-n'], { input: s }).status, 0);
  assert.match(s, /mv -f "\$tmp" "\$OUT"/);
  assert.match(s, /^DIR='\/var\/lib\/node_exporter\/text file'\\''s'$/m);
});

test('the strict parser refuses malformed expositions', () => {
  const bad = [
    'x 1\n', // sample before TYPE
    '# TYPE x counter\nx -1\n', // negative counter
    '# TYPE x gauge\nx{a="b} 1\n', // unterminated label value
    '# TYPE x gauge\nx{a="\\t"} 1\n', // bad escape
    '# TYPE x gauge\nx 1\nx 2\n', // duplicate series
    '# TYPE x gauge\n# TYPE y gauge\nx 1\ny 1\nx{a="b"} 2\n', // family not contiguous
    '# TYPE x gauge\nx one\n', // bad value
    '# TYPE x gauge\n# TYPE x gauge\n', // second TYPE
    '# TYPE 1x gauge\n', // bad name
    '# TYPE x gauge\nx 1', // no final newline
  ];
  for (const b of bad) assert.throws(() => parsePrometheusText(b), Error, JSON.stringify(b));
  assert.equal(parsePrometheusText('# HELP x a \\\\ b\n# TYPE x gauge\nx{a="\\"q\\""} 1.5e3 1700000000\n').get('x')!.samples[0]!.value, 1500);
});
