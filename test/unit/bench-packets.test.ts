// `prep-node bench`'s packet section without a kernel: its options refused with one line, the input
// it gives the loader, and the table and verdicts it prints from a document built here.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { packetConfig } from '../../src/commands/bench.js';
import { UsageError } from '../../src/errors.js';
import { BENCH_ONE_STATE_MAX, benchServices6, caps6, caseLines, packetPolicyState, runPacketBench } from '../../src/bench/packets.js';
import { BenchEnv } from '../../src/bench/env.js';
import { packetGrowth, renderPacketTable } from '../../src/bench/render.js';
import { PacketSection, type PacketCase } from '../../src/bench/schema.js';
import { compileState } from '../../src/datapath/compile.js';

describe('bench packet section: options', () => {
  it('defaults to 10, 10k and 1M services; --pkt-sizes takes k and m; --no-pkt leaves it out', () => {
    assert.deepEqual(packetConfig({}, 3), { sizes: [10, 10_000, 1_000_000], repeat: 1_000_000, flows: 10_000, runs: 3 });
    assert.deepEqual(packetConfig({ pktSizes: ['1m', '10', '10k', '10'] }, 1)?.sizes, [10, 10_000, 1_000_000]);
    assert.equal(packetConfig({ pkt: false }, 3), undefined);
  });

  it('refuses sizes beyond the address ranges, bad sizes and more flows than source ports', () => {
    assert.throws(() => packetConfig({ pktSizes: ['2m'] }, 1), (e) => e instanceof UsageError && /--pkt-sizes: 2000000 services do not fit/.test(e.message));
    assert.throws(() => packetConfig({ pktSizes: ['ten'] }, 1), (e) => e instanceof UsageError && /--pkt-sizes: expected numbers/.test(e.message));
    assert.throws(() => packetConfig({ pktFlows: 20_000 }, 3), (e) => e instanceof UsageError && /--pkt-flows 20000 x --runs 3/.test(e.message));
  });
});

describe('bench packet section: without a loader', () => {
  it('every size is reported not attempted, with why, and nothing is mounted', async () => {
    const cfg = { sizes: [10, 100], repeat: 10, flows: 10, runs: 1 };
    const lines: string[] = [];
    const s = await runPacketBench(new BenchEnv(), '/nonexistent/prep-node-dp', cfg, (l) => lines.push(l));
    assert.deepEqual(s.results.map((r) => [r.services, r.status]), [[10, 'skipped'], [100, 'skipped']]);
    assert.match(s.results[0]!.reason!, /the loader \/nonexistent\/prep-node-dp is missing \(make -C bpf\)/);
  });
});

describe('bench packet section: the loader input', () => {
  it('runs use disjoint source ports; conntrack-hit repeats its first-packet case\'s flows', () => {
    const a = caseLines('10.96.0.10', 'fd00:96::a', 0, 100);
    const b = caseLines('10.96.0.10', 'fd00:96::a', 1, 100);
    const field = (l: string, i: number) => l.split(' ')[i];
    assert.equal(field(a[0]!.line, 4), '1024');
    assert.equal(field(b[0]!.line, 4), '1124');
    assert.equal(a[1]!.line.replace('conntrack-hit', 'service-new'), a[0]!.line);
    assert.equal(a[6]!.line.replace('conntrack-hit', 'service-new'), a[5]!.line, 'IPv6: the same pairing');
    assert.deepEqual(a.map((c) => `${c.name}/${c.family}`), ['service-new/4', 'conntrack-hit/4', 'policy-allow/4', 'policy-ct-repeat/4', 'policy-deny/4', 'service-new/6', 'conntrack-hit/6', 'policy-allow/6', 'policy-ct-hit/6', 'policy-ct-repeat/6', 'policy-deny/6']);
    assert.deepEqual(a.map((c) => field(c.line, 1)), ['flows', 'flows', 'flows', 'repeat', 'repeat', 'flows', 'flows', 'flows', 'flows', 'repeat', 'repeat']);
    for (const c of a) assert.equal(c.family === 6, field(c.line, 3)!.includes(':'), c.line);
  });

  it('IPv6 services: one endpoint each, distinct addresses past 16 bits, compiled to services6/backends6', () => {
    const set = benchServices6(70_000);
    assert.equal(set[0]!.vip, 'fd00:96::1');
    assert.equal(set[69_999]!.vip, 'fd00:96::1:1170');
    assert.equal(set[69_999]!.backends[0]!.ip, 'fd00:128::1:1170');
    const maps = compileState({ services: set.slice(0, 3), endpoints: [], policies: [] }).entries.map((e) => e.map);
    assert.deepEqual([...new Set(maps)].sort(), ['backends6', 'services6']);
  });

  it('IPv6 capacities: the defaults up to 2^18 services, the next power of two above (1M: 2^20 services6, 2^21 backends6 like IPv4)', () => {
    assert.equal(caps6(BENCH_ONE_STATE_MAX), 'services6=262144,backends6=524288');
    assert.equal(caps6(262_145), 'services6=524288,backends6=1048576');
    assert.equal(caps6(1_000_000), 'services6=1048576,backends6=2097152');
  });

  it('the policy state compiles: the endpoint in both families, allow and deny rules', () => {
    const maps = new Set<string>(compileState({ services: [], ...packetPolicyState() }).entries.map((e) => e.map));
    for (const m of ['endpoints', 'endpoints6', 'policy', 'ipcache', 'ipcache6']) assert.ok(maps.has(m), m);
  });
});

describe('bench packet section: the table and the verdicts', () => {
  const fig = (m: number) => ({ median: m, min: m, max: m, runs: [m] });
  const kase = (name: string, ns: number, above: number): PacketCase => ({ name, family: 4, path: 'p', mode: 'flows', packets: 10, nsPerPacket: fig(ns), aboveFloorNs: above, retvals: { OK: 10 }, outSrc: '10.255.0.2:1024', outDst: '10.128.0.1:8080' });
  const section = PacketSection.parse({
    config: { sizes: [10, 1_000_000], repeat: 1000, flows: 10, runs: 1 },
    results: [
      { services: 10, status: 'ok', reason: null, fillMs: 5, floor: { repeatNs: fig(3), flowsNs: fig(40) }, cases: [kase('service-new', 200, 160), kase('conntrack-hit', 100, 60)], drops: {}, conntrackEntries: 20 },
      { services: 1_000_000, status: 'ok', reason: null, fillMs: 9000, floor: { repeatNs: fig(3), flowsNs: fig(40) }, cases: [kase('service-new', 230, 190), kase('conntrack-hit', 105, 65)], drops: {}, conntrackEntries: 20 },
    ],
  });

  it('a row per floor and case with its return codes and output addresses', () => {
    const t = renderPacketTable(section);
    assert.match(t, /\| 10 \| floor \(returns TC_ACT_OK\) \| – \| repeat 1,000 \| 3 \|/);
    assert.match(t, /\| 1,000,000 \| service-new \| IPv4 \| flows 10 \| 230 \| \+190 \| OK 10 \| 10\.255\.0\.2:1024 → 10\.128\.0\.1:8080 \|/);
  });

  it('says per case whether the goals are met, from the figures', () => {
    const g = packetGrowth(section);
    assert.match(g[0]!, /^service-new IPv4: 200 → 230 ns .*\(\+15\.0 %\): not flat \(> 10 %\); not under 100 ns over the floor at 1,000,000 \(\+190 ns\)$/);
    assert.match(g[1]!, /^conntrack-hit IPv4: 100 → 105 ns .*\(\+5\.0 %\): flat \(≤ 10 %\); under 100 ns over the floor/);
  });
});
