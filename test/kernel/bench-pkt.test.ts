// `prep-node-dp bench-pkt` on this machine's kernel at small sizes: the installed tc_lb run through
// BPF_PROG_TEST_RUN on the packets of `prep-node bench`'s packet section (src/bench/packets.ts),
// with the maps filled through `apply` as the bench fills them. Checked: the output's shape and that
// every packet took its intended path (return codes, the NAT seen in the output packet, the drop
// counters and conntrack entries afterwards) — never the timings, which belong to `make bench`.
// Everything lives in a bpffs and a cgroup v2 child this test creates and always removes.
// Needs root, bpftool-free: only the loader.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmdirSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { compileState } from '../../src/datapath/compile.js';
import { fullSync } from '../../src/datapath/sync.js';
import { datapathState } from '../../src/bench/modes.js';
import { BenchPktDoc, benchServices6, caseLines, packetPolicyState, PKT_CLIENT, PKT_CLIENT6, PKT_ENDPOINT, PKT_ENDPOINT6 } from '../../src/bench/packets.js';
import { benchServices } from '../../src/bench/services.js';
import { cgroupV2Root } from '../../src/bench/env.js';

const DP = fileURLToPath(new URL('../../../bpf/build/prep-node-dp', import.meta.url));
const V2 = cgroupV2Root();
const notRoot = process.getuid?.() !== 0 ? 'needs root (bpffs, cgroups, BPF_PROG_TEST_RUN)' : V2 === null ? 'needs a cgroup v2 mount' : false;

interface Run { code: number; stdout: string; stderr: string }

function dp(bpffs: string, args: string[], input = ''): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = execFile(DP, ['--bpffs', bpffs, ...args], { timeout: 120_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (err as { code?: unknown }).code : 0;
      if (typeof code !== 'number') return reject(err ?? new Error('no exit code'));
      resolve({ code, stdout, stderr });
    });
    // a refused option exits before stdin is read: the closed pipe is not the test's failure
    child.stdin!.on('error', () => {});
    child.stdin!.end(input);
  });
}

/** the loader's error document's message */
const errorOf = (r: Run): string => (JSON.parse(r.stdout) as { error: string }).error;

const FLOWS = 50;
const REPEAT = 1000;

describe('prep-node-dp bench-pkt', { skip: notRoot }, () => {
  let bpffs = '';
  let cgroup = '';
  let filled = false;
  const services = benchServices(10, 1);
  const last = services[services.length - 1]!;
  const services6 = benchServices6(10);
  const last6 = services6[services6.length - 1]!;

  before(() => {
    bpffs = mkdtempSync('/tmp/pn-benchpkt-');
    execFileSync('mount', ['-t', 'bpf', 'bpf', bpffs]);
    cgroup = `${V2!}/pn-benchpkt-${process.pid}`;
    mkdirSync(cgroup);
  });

  after(async () => {
    if (bpffs) {
      await dp(bpffs, ['remove']).catch(() => undefined);
      execFileSync('umount', [bpffs]);
      rmSync(bpffs, { recursive: true, force: true });
    }
    if (cgroup) rmdirSync(cgroup);
  });

  it('refuses to run where the datapath is not installed (exit 3)', async () => {
    const r = await dp(bpffs, ['bench-pkt'], `x repeat tcp ${PKT_CLIENT} 1 ${PKT_ENDPOINT} 80\n`);
    assert.equal(r.code, 3, r.stdout);
    assert.match(errorOf(r), /not installed/);
  });

  it('installs and fills the maps through apply, as the bench does', async () => {
    const inst = await dp(bpffs, ['install', '--cgroup', cgroup]);
    assert.equal(inst.code, 0, inst.stdout);
    const base = datapathState(services);
    const lines = fullSync(compileState({ ...base, services: [...base.services, ...services6], ...packetPolicyState() }).entries).lines;
    const r = await dp(bpffs, ['apply'], `${lines.join('\n')}\n`);
    assert.equal(r.code, 0, r.stdout);
    filled = true;
  });

  it('refuses bad input with one line and exit 2, before any run', async () => {
    for (const [input, args, re] of [
      [`x sometimes tcp ${PKT_CLIENT} 1 ${PKT_ENDPOINT} 80\n`, [], /line 1: expected NAME flows\|repeat/],
      [`x repeat tcp ${PKT_CLIENT} 1 ${PKT_ENDPOINT6} 80\n`, [], /both IPv4 or both IPv6/],
      [`x flows tcp ${PKT_CLIENT} 65000 ${PKT_ENDPOINT} 80\n`, ['--flows', '1000'], /runs past port 65535/],
      ['', [], /no case on stdin/],
      [`x repeat tcp ${PKT_CLIENT} 1 ${PKT_ENDPOINT} 80\n`, ['--repeat', '0'], /--repeat N/],
    ] as const) {
      const r = await dp(bpffs, ['bench-pkt', ...args], input);
      assert.equal(r.code, 2, `${input}: ${r.stdout}`);
      assert.match(errorOf(r), re);
      assert.equal(r.stdout.trim().split('\n').length, 1);
    }
  });

  it('sends each case down its path: NAT, conntrack, allow and deny on IPv4 and IPv6', async () => {
    assert.ok(filled, 'the maps were not filled (the step above failed)');
    const cases = caseLines(last.vip, last6.vip, 0, FLOWS);
    const r = await dp(bpffs, ['bench-pkt', '--repeat', String(REPEAT), '--flows', String(FLOWS)], `${cases.map((c) => c.line).join('\n')}\n`);
    assert.equal(r.code, 0, r.stdout);
    const doc = BenchPktDoc.parse(JSON.parse(r.stdout));
    assert.equal(doc.repeat, REPEAT);
    assert.equal(doc.flows, FLOWS);
    assert.equal(doc.floor.repeat.packets, REPEAT);
    assert.equal(doc.floor.flows.packets, FLOWS);
    assert.deepEqual(doc.cases.map((c) => `${c.name}/${c.family}/${c.mode}`), cases.map((c) => `${c.name}/${c.family}/${c.line.split(' ')[1]}`));
    const byName = (name: string, family: number) => doc.cases.find((c) => c.name === name && c.family === family)!;
    const backend = `${last.endpoints[0]!.ip}:${last.endpoints[0]!.port}`;
    const sport = Number(cases[0]!.line.split(' ')[4]);

    // service: every first packet DNATed to the service's one endpoint, and again from conntrack
    for (const name of ['service-new', 'conntrack-hit']) {
      const c = byName(name, 4);
      assert.deepEqual(c.retvals, { OK: FLOWS }, name);
      assert.equal(c.packets, FLOWS);
      assert.equal(c.out_dst, backend, name);
      assert.equal(c.out_src, `${PKT_CLIENT}:${sport}`, name);
    }
    // policy: allowed flows pass untranslated; the denied port is dropped in every iteration
    assert.deepEqual(byName('policy-allow', 4).retvals, { OK: FLOWS });
    assert.equal(byName('policy-allow', 4).out_dst, `${PKT_ENDPOINT}:8080`);
    assert.deepEqual(byName('policy-ct-repeat', 4).retvals, { OK: 1 });
    assert.equal(byName('policy-ct-repeat', 4).packets, REPEAT);
    assert.deepEqual(byName('policy-deny', 4).retvals, { SHOT: 1 });
    assert.deepEqual(byName('policy-allow', 6).retvals, { OK: FLOWS });
    assert.equal(byName('policy-allow', 6).out_dst, `[${PKT_ENDPOINT6}]:8080`);
    assert.equal(byName('policy-allow', 6).out_src, `[${PKT_CLIENT6}]:${sport}`);
    // IPv6 service: DNATed to its one endpoint, first packets and again from conntrack6
    for (const name of ['service-new', 'conntrack-hit']) {
      const c = byName(name, 6);
      assert.deepEqual(c.retvals, { OK: FLOWS }, name);
      assert.equal(c.out_dst, `[${last6.backends[0]!.ip}]:8080`, name);
      assert.equal(c.out_src, `[${PKT_CLIENT6}]:${sport}`, name);
    }
    assert.deepEqual(byName('policy-ct-hit', 6).retvals, { OK: FLOWS });
    assert.deepEqual(byName('policy-ct-repeat', 6).retvals, { OK: 1 });
    assert.deepEqual(byName('policy-deny', 6).retvals, { SHOT: 1 });
    for (const c of doc.cases) assert.ok(Number.isFinite(c.ns_per_packet) && c.ns_per_packet >= 0, c.name);

    // what the kernel holds afterwards: the drops counted per iteration, the flows in conntrack,
    // the service's packets counted (first packets and conntrack hits)
    const st = JSON.parse((await dp(bpffs, ['status'])).stdout) as { drops: Record<string, number>; maps: { name: string; entries?: number }[]; forwarded: { packets: number } };
    assert.equal(st.drops.POLICY_DENY, 2 * REPEAT, 'IPv4 and IPv6 deny iterations');
    assert.equal(st.drops.POLICY_DEFAULT_DENY, 0);
    const entries = (m: string) => st.maps.find((x) => x.name === m)?.entries;
    assert.equal(entries('conntrack'), 2 * FLOWS + 2 * FLOWS, 'service flows and policy flows, both directions');
    assert.equal(entries('conntrack6'), 2 * FLOWS + 2 * FLOWS, 'IPv6 service flows and policy flows, both directions');
    assert.equal(st.forwarded.packets, 4 * FLOWS, 'IPv4 and IPv6 service flows, first packets and conntrack hits');
  });
});
