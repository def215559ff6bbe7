// `prep-node bench` on this machine's kernel, through the CLI, tiny configurations only (timings
// belong to `make bench`, not to assertions): its JSON validates and holds every figure for every
// mode and size, the report has its plots, a mode the machine cannot run is reported with why while
// the others run, non-root is refused, and an interrupted run leaves nothing behind: SIGTERM cleans
// up on the way out, a SIGKILLed run's namespaces, bpffs pins and cgroups are removed by
// `bench --cleanup` (which every run also does first). Needs root, clang, bpftool, iproute2, nft,
// iptables.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { BenchDocument } from '../../src/bench/schema.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = `${ROOT}dist/src/cli.js`;
const notRoot = process.getuid?.() !== 0 ? 'needs root (network namespaces, cgroups, bpffs)' : false;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env, maxBuffer: 64 << 20, timeout: 300_000 }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: number | string; signal?: NodeJS.Signals }) | null;
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, signal: e?.signal ?? null, stdout, stderr });
    });
  });
}

// ---------------------------------------------------------------- what a run leaves on the machine

const sh = (cmd: string, args: string[]) => {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return '';
  }
};

/** Everything named after a bench pid (src/bench/env.ts): namespaces, the run directory, cgroups, bpffs mounts. */
function traces(pid: number): string[] {
  const out: string[] = [];
  for (const line of sh('ip', ['netns', 'list']).split('\n')) if (line.startsWith(`pnb-${pid}-`)) out.push(`netns ${line.split(' ')[0]}`);
  if (existsSync(`/run/prep-node-bench/${pid}`)) out.push(`dir /run/prep-node-bench/${pid}`);
  for (const parent of ['/sys/fs/cgroup', '/sys/fs/cgroup/unified', '/sys/fs/cgroup/memory']) {
    if (existsSync(`${parent}/prep-node-bench-${pid}`)) out.push(`cgroup ${parent}/prep-node-bench-${pid}`);
  }
  for (const line of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const mnt = line.split(' ')[1] ?? '';
    if (mnt.startsWith(`/run/prep-node-bench/${pid}/`)) out.push(`mount ${mnt}`);
  }
  return out;
}

/** Ids of the programs and maps pinned in a run's private bpffs mounts. */
function pinnedIds(pid: number): { progs: number[]; maps: number[] } {
  const progs: number[] = [];
  const maps: number[] = [];
  const dir = `/run/prep-node-bench/${pid}`;
  if (!existsSync(dir)) return { progs, maps };
  for (const fs of readdirSync(dir).filter((d) => d.startsWith('bpffs-'))) {
    const base = `${dir}/${fs}/prep-node`;
    for (const [sub, kind, into] of [['progs', 'prog', progs], ['maps', 'map', maps]] as const) {
      if (!existsSync(`${base}/${sub}`)) continue;
      for (const f of readdirSync(`${base}/${sub}`)) {
        const doc = JSON.parse(sh('bpftool', ['-j', kind, 'show', 'pinned', `${base}/${sub}/${f}`]) || '{}') as { id?: number };
        if (doc.id) into.push(doc.id);
      }
    }
  }
  return { progs, maps };
}

/** Which of these ids the kernel still has; waits up to 5 s (objects go after an RCU grace period). */
async function stillLoaded(ids: { progs: number[]; maps: number[] }): Promise<string[]> {
  let left: string[] = [];
  for (let i = 0; i < 50; i++) {
    const progs = new Set((JSON.parse(sh('bpftool', ['-j', 'prog', 'show']) || '[]') as { id: number }[]).map((p) => p.id));
    const maps = new Set((JSON.parse(sh('bpftool', ['-j', 'map', 'show']) || '[]') as { id: number }[]).map((m) => m.id));
    left = [...ids.progs.filter((id) => progs.has(id)).map((id) => `prog ${id}`), ...ids.maps.filter((id) => maps.has(id)).map((id) => `map ${id}`)];
    if (left.length === 0) return left;
    await new Promise((r) => setTimeout(r, 100));
  }
  return left;
}

/** The root namespace's rule sets, counters stripped: the bench must never change them. */
function rootRules(): string {
  return [sh('nft', ['list', 'ruleset']), sh('iptables-legacy-save', [])]
    .join('\n')
    .replace(/packets \d+ bytes \d+/g, '')
    .replace(/\[\d+:\d+\]/g, '')
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .join('\n');
}

/** Start a bench, resolve once stderr matched `ready`; the child and its stderr so far. */
function startUntil(args: string[], ready: RegExp): Promise<{ child: ReturnType<typeof spawn>; stderr: () => string }> {
  const child = spawn(process.execPath, [CLI, 'bench', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`bench did not reach ${ready} in 120 s:\n${err}`)), 120_000);
    child.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
      if (ready.test(err)) {
        clearTimeout(timer);
        resolve({ child, stderr: () => err });
      }
    });
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`bench exited (${code ?? sig}) before ${ready}:\n${err}`));
    });
  });
}

const exited = (child: ReturnType<typeof spawn>) =>
  new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode });
    else child.once('exit', (code, signal) => resolve({ code, signal }));
  });

// ---------------------------------------------------------------- the tests

describe('prep-node bench', { skip: notRoot }, () => {
  const scratch = mkdtempSync('/tmp/prep-node-bench-test-');
  const pids: number[] = [];
  let rulesBefore = '';

  before(() => {
    // -j1: the machine is shared; `all` builds the loader and the load generator
    execFileSync('make', ['-C', `${ROOT}bpf`, '-j1', 'all'], { stdio: 'ignore' });
    rulesBefore = rootRules();
  });

  after(() => {
    // whatever a failed test left: the bench's own cleanup, by name
    if (pids.some((p) => traces(p).length > 0)) execFileSync(process.execPath, [CLI, 'bench', '--cleanup', '--quiet'], { stdio: 'ignore' });
    rmSync(scratch, { recursive: true, force: true });
  });

  it('refuses to run as non-root, with a clear message (exit 4)', () => {
    const r = (() => {
      try {
        execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, 'bench', '--sizes', '1'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
        return { status: 0, stderr: '' };
      } catch (e) {
        return e as { status: number; stderr: string };
      }
    })();
    assert.equal(r.status, 4, r.stderr);
    assert.match(r.stderr, /^prep-node: bench needs root: .*sudo/m);
  });

  it('a tiny run: JSON with every figure for every mode and size, a report with plots, nothing left behind', async (t) => {
    const report = `${scratch}/report`;
    const child = spawn(process.execPath, [CLI, 'bench', '--sizes', '1,100', '--runs', '2', '--duration', '200', '--warmup', '50', '--pkt-sizes', '10,100', '--pkt-flows', '200', '--pkt-repeat', '2000', '--json', '--report', report], { stdio: ['ignore', 'pipe', 'pipe'] });
    pids.push(child.pid!);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const { code } = await exited(child);
    assert.equal(code, 0, stderr);

    const doc = BenchDocument.parse(JSON.parse(stdout));
    t.diagnostic(`took ${doc.durationS} s`);
    assert.deepEqual(doc.config.sizes, [1, 100]);
    assert.equal(doc.config.runs, 2);
    const available = doc.modes.filter((m) => m.available).map((m) => m.id);
    for (const m of doc.modes) if (!m.available) assert.ok((m.reason ?? '').length > 0, `${m.id} unavailable without a reason`);
    // this machine (kernel tier): cgroup v2, nf_tables and x_tables are all there
    assert.deepEqual(available, ['direct', 'prepnode-sock', 'prepnode-tc', 'iptables-nft', 'iptables-legacy', 'nftables'], JSON.stringify(doc.modes));

    const fig = z.object({ median: z.number(), min: z.number(), max: z.number(), runs: z.array(z.number()).length(2) }).refine((f) => f.min <= f.median && f.median <= f.max && f.min > 0, 'median within min..max, positive');
    for (const id of available) {
      for (const size of [1, 100]) {
        const r = doc.results.find((x) => x.mode === id && x.services === size);
        assert.ok(r, `no result for ${id} at ${size}`);
        assert.equal(r.status, 'ok', `${id} ${size}: ${r.reason}`);
        const c = r.connect!;
        for (const f of [c.perSec, c.p50Us, c.p99Us, c.sysUsPerConn]) fig.parse(f);
        assert.ok(c.p50Us.median <= c.p99Us.median);
        assert.ok(c.connections > 0);
        // every connection went through the mode: the VIP is routed nowhere
        assert.equal(c.target, id === 'direct' ? `10.128.0.${size * 2 - 1}:8080` : `10.96.0.${size}:80`);
        if (id === 'direct') {
          assert.equal(r.vsDirect, 1);
          assert.equal(r.programMs, null);
          assert.equal(r.memory, null);
        } else {
          assert.ok(r.vsDirect !== null && r.vsDirect > 0);
          for (const f of [r.programMs, r.addMs, r.removeMs]) fig.parse(f);
          assert.ok(r.memory, `${id}: no memory figure`);
          assert.ok(r.memory.kernelSource.length > 0);
          if (id.startsWith('prepnode')) {
            assert.ok((r.memory.mapsBytes ?? 0) > 0 && (r.memory.serviceMapsBytes ?? 0) > 0);
            assert.equal(r.memory.mapEntries, size * 3, 'services + backends entries (2 endpoints each)');
          }
        }
      }
    }
    // the packet section: every case at both sizes, each packet down its path (the timings are
    // not checked: they belong to make bench; test/kernel/bench-pkt.test.ts checks the paths closely)
    const pk = doc.packets!;
    assert.deepEqual(pk.config, { sizes: [10, 100], repeat: 2000, flows: 200, runs: 2 });
    for (const r of pk.results) {
      assert.equal(r.status, 'ok', `${r.services}: ${r.reason}`);
      fig.parse(r.floor!.repeatNs);
      assert.deepEqual(r.cases.map((c) => `${c.name}/${c.family}`), ['service-new/4', 'conntrack-hit/4', 'policy-allow/4', 'policy-ct-repeat/4', 'policy-deny/4', 'service-new/6', 'conntrack-hit/6', 'policy-allow/6', 'policy-ct-hit/6', 'policy-ct-repeat/6', 'policy-deny/6']);
      for (const c of r.cases) assert.deepEqual(c.retvals, c.name === 'policy-deny' ? { SHOT: 2 } : c.mode === 'repeat' ? { OK: 2 } : { OK: 400 }, `${r.services} ${c.name}/${c.family}`);
      assert.equal(r.cases[0]!.outDst, `10.128.0.${r.services}:8080`, 'DNAT to the last service\'s one endpoint');
      assert.equal(r.drops.POLICY_DENY, 2 * 2 * 2000, 'IPv4 and IPv6, 2 runs');
    }
    // the report: Markdown with the table and the plots, each plot a standalone SVG naming every mode
    const md = readFileSync(`${report}/README.md`, 'utf8');
    assert.match(md, /\| services \| mode \| conn\/s \|/);
    assert.match(md, /## Per packet: tc_lb through BPF_PROG_TEST_RUN/);
    assert.match(md, /\| 100 \| service-new \| IPv4 \| flows 200 \|/);
    BenchDocument.parse(JSON.parse(readFileSync(`${report}/bench.json`, 'utf8')));
    for (const svg of ['connections.svg', 'latency.svg', 'programming.svg', 'update.svg']) {
      assert.match(md, new RegExp(`\\]\\(${svg.replace('.', '\\.')}\\)`));
      const text = readFileSync(`${report}/${svg}`, 'utf8');
      assert.match(text, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"[^>]*viewBox=/);
      assert.match(text, /<\/svg>\n$/);
      assert.doesNotMatch(text, /NaN|undefined|Infinity/);
      const modes = svg === 'connections.svg' || svg === 'latency.svg' ? available : available.filter((m) => m !== 'direct');
      for (const m of modes) assert.match(text, new RegExp(`>${m.replace('prepnode-', 'prep-node ')}<`), `${svg}: no legend entry for ${m}`);
    }
    assert.deepEqual(traces(child.pid!), []);
    assert.equal(rootRules(), rulesBefore, 'the root namespace rules changed');
  });

  it('a mode the kernel refuses is reported unavailable with the reason; the others run', async () => {
    // an nft that exists but whose every transaction the "kernel" refuses
    const fake = `${scratch}/nft`;
    writeFileSync(fake, '#!/bin/sh\n[ "$1" = --version ] && { echo "nftables v9.9.9 (fake)"; exit 0; }\necho "Error: Could not process rule: Operation not supported" >&2\nexit 1\n');
    chmodSync(fake, 0o755);
    const r = await cli(['bench', '--modes', 'nftables,prepnode-sock', '--sizes', '1', '--runs', '1', '--duration', '100', '--no-pkt', '--json'], { ...process.env, PREP_NODE_BENCH_NFT: fake });
    assert.equal(r.code, 0, r.stderr);
    const doc = BenchDocument.parse(JSON.parse(r.stdout));
    const nft = doc.modes.find((m) => m.id === 'nftables');
    assert.equal(nft?.available, false);
    assert.match(nft?.reason ?? '', /kernel refused .*nftables.*Operation not supported/);
    assert.deepEqual(doc.results.filter((x) => x.mode === 'nftables'), []);
    assert.deepEqual(doc.results.map((x) => [x.mode, x.status]), [['direct', 'ok'], ['prepnode-sock', 'ok']]);
    assert.match(r.stderr, /nftables: unavailable/);
  });

  it('--agent: the agent CLI against the fake API server on real pinned maps; every change written, figures present, nothing left behind', async () => {
    const r = await cli(['bench', '--agent', '--sizes', '100', '--churn', '2', '--runs', '1', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as import('../../src/bench/agent.js').AgentBenchDoc;
    assert.equal(doc.schema, 'prep-node/bench-agent/v2');
    assert.ok(doc.baseline.rssBytes > 0, JSON.stringify(doc.baseline));
    assert.deepEqual([doc.config.services, doc.config.endpointsPer, doc.config.pods], [100, 5, 50]);
    // the initial sync wrote the set: 100 services with 5 backends each
    assert.equal(doc.initial.entries.backends, 500, JSON.stringify(doc.initial));
    assert.equal(doc.initial.entries.services, 100, JSON.stringify(doc.initial));
    assert.ok(doc.initial.readyS > 0 && doc.initial.rssBytes > 0 && doc.initial.peakRssBytes >= doc.initial.rssBytes);
    assert.deepEqual(doc.churn.map((c) => [c.rate, c.changes]), [[100, 200], [1000, 2000]]);
    for (const c of doc.churn) {
      assert.ok(c.written >= c.changes, `every change written: ${JSON.stringify(c)}`);
      assert.ok(c.syncs >= 1 && c.syncs <= c.written, JSON.stringify(c));
      assert.ok(c.p50S !== null && c.p99S !== null && c.maxS !== null && 0 < c.p50S && c.p50S <= c.p99S && c.p99S <= c.maxS, JSON.stringify(c));
      assert.equal(c.lost, 0, JSON.stringify(c));
      assert.ok(c.cpuPct > 0, JSON.stringify(c));
    }
    assert.ok(!('unavailable' in doc.nftables), JSON.stringify(doc.nftables));
    if (!('unavailable' in doc.nftables)) assert.equal(doc.nftables.endpointChangeMs.runs.length, 2);
    // nothing of the run is left: its network namespace, its cgroup
    assert.doesNotMatch(sh('ip', ['netns', 'list']), /pn-bench-agent-nft-/);
    for (const parent of ['/sys/fs/cgroup', '/sys/fs/cgroup/unified']) if (existsSync(parent)) assert.deepEqual(readdirSync(parent).filter((d) => d.startsWith('pn-bench-agent-')), [], parent);
    assert.match(r.stderr, /agent: ready after .* s/);
  });

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    it(`a run killed midway (${signal}) leaves no namespaces, rules, pinned maps or cgroups${signal === 'SIGKILL' ? ' once the next run cleans up' : ''}`, async () => {
      // the first size has everything set up and programmed; the second is still running when killed
      const { child, stderr } = await startUntil(['--sizes', '1,2000', '--runs', '3', '--duration', '300', '--no-pkt'], /\s1 services\s+nftables\s+programmed/);
      pids.push(child.pid!);
      const pid = child.pid!;
      const ids = pinnedIds(pid);
      const left = traces(pid);
      assert.ok(left.some((x) => x.startsWith('netns')) && left.some((x) => x.startsWith('mount')) && left.some((x) => x.startsWith('cgroup')), `nothing to clean up yet: ${left.join(', ')}`);
      assert.ok(ids.progs.length >= 10 && ids.maps.length >= 10, `pinned objects of both prep-node modes: ${JSON.stringify(ids)}`);
      // rules exist inside the node namespaces
      assert.match(sh('ip', ['netns', 'exec', `pnb-${pid}-nftables-n`, 'nft', 'list', 'tables']), /kube-proxy/);

      child.kill(signal);
      const end = await exited(child);
      if (signal === 'SIGTERM') {
        assert.equal(end.code, 143, stderr());
        assert.match(stderr(), /SIGTERM: removing the namespaces, mounts and cgroups of this run/);
      } else {
        assert.equal(end.signal, 'SIGKILL');
        // nothing could run: the namespaces stay (their processes died with the bench, PR_SET_PDEATHSIG)
        assert.ok(traces(pid).some((x) => x.startsWith('netns')), 'a SIGKILLed run cannot have cleaned up');
        const r = await cli(['bench', '--cleanup']);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stderr, new RegExp(`removed netns pnb-${pid}-`));
      }
      assert.deepEqual(traces(pid), []);
      assert.deepEqual(await stillLoaded(ids), [], 'BPF programs or maps of the run still loaded');
      assert.equal(rootRules(), rulesBefore, 'the root namespace rules changed');
    });
  }
});
