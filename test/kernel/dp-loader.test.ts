// The node-side loader (bpf/build/prep-node-dp) on this machine's kernel, as prep-node drives it:
// install, apply map entries, real traffic through both hooks, status, events, a failed install that
// must leave nothing behind, and remove. Everything happens in a bpffs, network namespaces and a
// cgroup v2 child this test creates and always removes; the machine's /sys/fs/bpf and cgroup root
// are never touched (the loader's --bpffs and --cgroup point it at ours).
//
//   client ns  c0 10.1.0.2 ──veth── n0 10.1.0.1  node ns  10.2.0.1 n1 ──veth── p0 10.2.0.2  pod ns
//                                   tc_lb ingress on n0 and n1        `serve` on 0.0.0.0:8080
//
// The loader runs in the node ns through `nsenter --net` (not `ip netns exec`, which remounts /sys
// and would hide the cgroup v2 mount). Sockets are translated only for processes in the test cgroup
// (connect-time, sock_lb); the others' packets are translated by tc_lb on n0/n1 (DNAT + reverse NAT).
// Needs root, clang, bpftool, iproute2, nsenter.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { endianness } from 'node:os';
import { fileURLToPath } from 'node:url';
import { DROP_REASONS } from '../../src/datapath/drop-reasons.js';
import { parsePrometheusText } from '../helpers/prometheus-text.js';
import { familyHeaders } from '../helpers/datapath-families.js';

const BPF_DIR = fileURLToPath(new URL('../../../bpf/', import.meta.url));
const DP = `${BPF_DIR}build/prep-node-dp`;
const notRoot = process.getuid?.() !== 0 ? 'needs root (bpffs, cgroups, network namespaces)' : false;

// ---------------------------------------------------------------- map encoding (datapath_structs.h)

const LE = endianness() === 'LE';
const hex = (b: Buffer): string => b.toString('hex');
/** IPv4 dotted quad -> 4 bytes in network order (__be32). */
function ip4(addr: string): Buffer {
  return Buffer.from(addr.split('.').map(Number));
}
function u32(buf: Buffer, off: number, v: number): void {
  if (LE) buf.writeUInt32LE(v, off);
  else buf.writeUInt32BE(v, off);
}
/** struct lb_svc_key { __be32 vip; __be16 port; __u8 proto; __u8 scope; } */
function svcKey(vip: string, port: number, proto: 'tcp' | 'udp'): string {
  const b = Buffer.alloc(8);
  ip4(vip).copy(b, 0);
  b.writeUInt16BE(port, 4);
  b[6] = proto === 'tcp' ? 6 : 17;
  return hex(b);
}
/** struct lb_service { __u32 svc_id, backend_count, flags, affinity_timeout_s; } */
function service(svcId: number, backendCount: number): string {
  const b = Buffer.alloc(16);
  u32(b, 0, svcId);
  u32(b, 4, backendCount);
  return hex(b);
}
/** struct lb_backend_key { __u32 svc_id, slot; } */
function backendKey(svcId: number, slot: number): string {
  const b = Buffer.alloc(8);
  u32(b, 0, svcId);
  u32(b, 4, slot);
  return hex(b);
}
/** struct lb_backend { __be32 addr; __be16 port; __u16 pad; __u32 backend_id; } */
function backend(addr: string, port: number, backendId: number): string {
  const b = Buffer.alloc(12);
  ip4(addr).copy(b, 0);
  b.writeUInt16BE(port, 4);
  u32(b, 8, backendId);
  return hex(b);
}

// ---------------------------------------------------------------- running things

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a command; a non-zero exit is data here, not an exception. */
function run(cmd: string, args: string[], input?: string, env?: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { timeout: 60_000, maxBuffer: 16 << 20, ...(env ? { env } : {}) }, (err, stdout, stderr) => {
      const code = err ? (err as { code?: unknown }).code : 0;
      if (typeof code !== 'number') reject(err ?? new Error(`${cmd}: no exit code`));
      else resolve({ code, stdout, stderr });
    });
    if (input !== undefined) {
      // a command that fails before reading stdin (not installed, ...) closes it: EPIPE is fine
      child.stdin?.on('error', () => {});
      child.stdin?.end(input);
    }
  });
}

/** Throw with everything printed when a setup command fails. */
async function must(cmd: string, ...args: string[]): Promise<string> {
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** The one JSON document a loader command prints. */
function json(r: Run): Record<string, unknown> {
  try {
    return JSON.parse(r.stdout) as Record<string, unknown>;
  } catch {
    throw new Error(`not one JSON document (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
}

describe('prep-node-dp: the node-side loader', { skip: notRoot }, () => {
  const tag = `pndp${process.pid % 100000}`;
  const ns = { client: `${tag}c`, node: `${tag}n`, pod: `${tag}p` };
  const scratch = mkdtempSync('/tmp/prep-node-dp-test-');
  const bpffs = `${scratch}/bpffs`;
  let cgroup = '';
  let server: ChildProcess | undefined;
  let mounted = false;
  const VIP = '10.96.0.10';
  const POD = '10.2.0.2';

  /** the loader in the node namespace, on the test bpffs */
  const dp = (args: string[], input?: string) =>
    run('nsenter', [`--net=/run/netns/${ns.node}`, DP, '--bpffs', bpffs, ...args], input);
  /** a loader command in the client namespace; inCgroup: its sockets get the sock_lb programs */
  const client = (args: string[], inCgroup: boolean) =>
    inCgroup
      ? run('sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup, 'nsenter', `--net=/run/netns/${ns.client}`, DP, ...args])
      : run('nsenter', [`--net=/run/netns/${ns.client}`, DP, ...args]);
  const probe = async (target: string, inCgroup: boolean, extra: string[] = []) => {
    const out = json(await client(['probe', '--connect', target, '--timeout-ms', '1500', ...extra], inCgroup));
    return out.results as { ok: boolean; errno: string | null; reply: string | null; peer: string | null }[];
  };

  /** What of ours the kernel holds: programs by name, their links, the cgroup's and node ns's tc attachments. */
  async function attached(): Promise<{ progs: number[]; links: number[]; cgroup: unknown[]; tc: unknown[] }> {
    const names = new Set(['tc_lb', 'sock4_connect', 'sock4_sendmsg', 'sock4_getpeerna', 'sock4_recvmsg']);
    // bpftool -j prints nothing at all for an empty cgroup
    const bpftool = async (...args: string[]): Promise<unknown> => JSON.parse((await must('bpftool', '-j', ...args)).trim() || '[]');
    const progs = ((await bpftool('prog', 'show')) as { id: number; name?: string }[])
      .filter((p) => p.name !== undefined && names.has(p.name))
      .map((p) => p.id)
      .sort();
    const links = ((await bpftool('link', 'show')) as { id: number; prog_id: number }[])
      .filter((l) => progs.includes(l.prog_id))
      .map((l) => l.id);
    const cg = (await bpftool('cgroup', 'show', cgroup)) as unknown[];
    const net = JSON.parse(await must('nsenter', `--net=/run/netns/${ns.node}`, 'bpftool', '-j', 'net', 'show')) as { tc?: unknown[] }[];
    return { progs, links, cgroup: cg, tc: net.flatMap((n) => n.tc ?? []) };
  }

  /** attached() once it equals want, or what it was after ~3 s: the kernel frees a detached program
   *  after an RCU grace period, so bpftool can still list it for a moment after the loader exits. */
  async function settled(want: Awaited<ReturnType<typeof attached>>): Promise<Awaited<ReturnType<typeof attached>>> {
    let now = await attached();
    for (let i = 0; i < 30 && JSON.stringify(now) !== JSON.stringify(want); i++) {
      await new Promise((r) => setTimeout(r, 100));
      now = await attached();
    }
    return now;
  }

  function cleanup(): void {
    const quiet = { stdio: 'ignore' as const };
    try {
      if (existsSync(`${bpffs}/prep-node`)) execFileSync('nsenter', [`--net=/run/netns/${ns.node}`, DP, '--bpffs', bpffs, 'remove'], quiet);
    } catch { /* reported by the test that left it */ }
    server?.kill('SIGKILL');
    for (const n of Object.values(ns)) {
      try { execFileSync('ip', ['netns', 'del', n], quiet); } catch { /* not created */ }
    }
    // processes that joined the cgroup are gone (probe exits, server killed): the directory can go
    for (let i = 0; cgroup && existsSync(cgroup) && i < 50; i++) {
      try { rmdirSync(cgroup); } catch { execFileSync('sleep', ['0.1']); }
    }
    if (mounted) {
      try { execFileSync('umount', [bpffs], quiet); mounted = false; } catch { /* busy: left for the next run */ }
    }
    rmSync(scratch, { recursive: true, force: true });
  }
  const onSignal = (sig: NodeJS.Signals) => { cleanup(); process.kill(process.pid, sig); };

  before(async () => {
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    // -j1: the machine is shared; `all` includes the loader
    await must('make', '-C', BPF_DIR, '-j1', 'all');

    mkdirSync(bpffs);
    await must('mount', '-t', 'bpf', 'bpf', bpffs);
    mounted = true;
    const v2 = ['/sys/fs/cgroup', '/sys/fs/cgroup/unified'].find((p) => existsSync(`${p}/cgroup.procs`) && existsSync(`${p}/cgroup.controllers`));
    assert.ok(v2, 'no cgroup v2 mount');
    cgroup = `${v2}/${tag}`;
    mkdirSync(cgroup);

    for (const n of Object.values(ns)) {
      await must('ip', 'netns', 'add', n);
      await must('ip', '-n', n, 'link', 'set', 'lo', 'up');
    }
    await must('ip', '-n', ns.client, 'link', 'add', 'c0', 'type', 'veth', 'peer', 'name', 'n0', 'netns', ns.node);
    await must('ip', '-n', ns.pod, 'link', 'add', 'p0', 'type', 'veth', 'peer', 'name', 'n1', 'netns', ns.node);
    for (const [n, dev, addr, gw] of [[ns.client, 'c0', '10.1.0.2/24', '10.1.0.1'], [ns.pod, 'p0', `${POD}/24`, '10.2.0.1']] as const) {
      await must('ip', '-n', n, 'addr', 'add', addr, 'dev', dev);
      await must('ip', '-n', n, 'link', 'set', dev, 'up');
      await must('ip', '-n', n, 'route', 'add', 'default', 'via', gw);
    }
    await must('ip', '-n', ns.node, 'addr', 'add', '10.1.0.1/24', 'dev', 'n0');
    await must('ip', '-n', ns.node, 'addr', 'add', '10.2.0.1/24', 'dev', 'n1');
    await must('ip', '-n', ns.node, 'link', 'set', 'n0', 'up');
    await must('ip', '-n', ns.node, 'link', 'set', 'n1', 'up');
    await must('ip', 'netns', 'exec', ns.node, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');

    // the backend: prints {"listening"...} once bound
    server = spawn('nsenter', [`--net=/run/netns/${ns.pod}`, DP, 'serve', '--port', '8080', '--name', 'pod1'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const ready = await new Promise<string>((resolve, reject) => {
      server?.stdout?.once('data', (d: Buffer) => resolve(d.toString()));
      server?.once('exit', (code) => reject(new Error(`serve exited ${code}`)));
    });
    assert.match(ready, /"listening":"0\.0\.0\.0:8080"/);
  });

  after(cleanup);

  it('builds a fully static binary that runs with an empty environment', async (t) => {
    const file = await must('file', DP);
    assert.match(file, /statically linked/, file);
    t.diagnostic(`bpf/build/prep-node-dp: ${statSync(DP).size} bytes`);
    const version = await run(DP, ['version'], undefined, {});
    assert.equal(version.code, 0, version.stderr);
    assert.match(String(json(version).version), /\S/);
    const status = await run(DP, ['--bpffs', bpffs, 'status'], undefined, {});
    assert.equal(status.code, 0, status.stderr);
    assert.equal(json(status).installed, false);
  });

  it('says what to do when no bpffs is mounted (exit 7, no-bpffs)', async () => {
    const r = await run(DP, ['--bpffs', scratch, 'install', '--cgroup', cgroup]);
    assert.equal(r.code, 7, r.stdout);
    assert.equal(json(r).code, 'no-bpffs');
    assert.match(String(json(r).error), /mount -t bpf bpf/);
  });

  it('commands that need an install say it is not installed (exit 3)', async () => {
    const r = await dp(['apply'], 'clear services\n');
    assert.equal(r.code, 3, r.stdout);
    assert.equal(json(r).code, 'not-installed');
    const rm = await dp(['remove']);
    assert.equal(rm.code, 0);
    assert.deepEqual(json(rm), { removed: false, reason: 'not installed' });
  });

  it('rejects a --tc-dev that does not exist before changing anything (exit 5)', async () => {
    const before = await attached();
    const r = await dp(['install', '--cgroup', cgroup, '--tc-dev', 'n0', '--tc-dev', 'nosuchdev0']);
    assert.equal(r.code, 5, r.stdout);
    assert.equal(json(r).code, 'no-such-dev');
    assert.deepEqual(await settled(before), before);
    assert.deepEqual(readdirSync(bpffs).filter((e) => e.startsWith('prep-node')), []);
  });

  it('rolls a failed install back: attach to n1 fails after the cgroup and n0 attached', async () => {
    // someone else's filter at our priority on n1, in a clsact we did not create
    await must('tc', '-n', ns.node, 'qdisc', 'add', 'dev', 'n1', 'clsact');
    await must('tc', '-n', ns.node, 'filter', 'add', 'dev', 'n1', 'ingress', 'prio', '1', 'protocol', 'all', 'u32', 'match', 'u32', '0', '0');
    try {
      const before = await attached();
      const r = await dp(['install', '--cgroup', cgroup, '--tc-dev', 'n0', '--tc-dev', 'n1']);
      assert.equal(r.code, 5, r.stdout);
      assert.equal(json(r).code, 'attach-failed');
      assert.match(String(json(r).error), /n1/);
      assert.deepEqual(await settled(before), before, 'programs, links, cgroup or tc attachments left behind');
      assert.deepEqual(readdirSync(bpffs).filter((e) => e.startsWith('prep-node')), [], 'pins left behind');
      // n0's clsact was ours: gone; n1's was not: kept, with its filter
      assert.doesNotMatch(await must('tc', '-n', ns.node, 'qdisc', 'show', 'dev', 'n0'), /clsact/);
      assert.match(await must('tc', '-n', ns.node, 'filter', 'show', 'dev', 'n1', 'ingress'), /u32/);
    } finally {
      await must('tc', '-n', ns.node, 'qdisc', 'del', 'dev', 'n1', 'clsact');
    }
  });

  it('reports a map the kernel refuses as a load failure (exit 4) and leaves nothing', async () => {
    const before = await attached();
    const r = await dp(['install', '--cgroup', cgroup, '--cap', 'conntrack=4294967295']);
    assert.equal(r.code, 4, r.stdout);
    assert.equal(json(r).code, 'load-failed');
    assert.match(String(json(r).error), /conntrack/);
    assert.deepEqual(await settled(before), before);
  });

  it('sizes the maps for the RAM it is told (a 1 GiB node): at most 64 MiB of map memory, --cap still wins', async () => {
    const r = await dp(['install', '--cgroup', cgroup, '--ram-mib', '1024', '--cap', 'conntrack=16384']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(json(r).sized_for_ram_mib, 1024);
    try {
      const st = json(await dp(['status'])) as { maps: { name: string; max_entries: number; memlock_bytes: number }[] };
      const maps = Object.fromEntries(st.maps.map((m) => [m.name, m]));
      assert.equal(maps.services?.max_entries, (1 << 20) / 4, 'a quarter of the 4 GiB default');
      assert.equal(maps.svc_counters?.max_entries, (1 << 20) / 4, 'follows services');
      assert.equal(maps.conntrack?.max_entries, 16384, '--cap overrides the RAM sizing');
      assert.equal(maps.drop_counters?.max_entries, 64, 'arrays keep their size');
      const total = st.maps.reduce((n, m) => n + m.memlock_bytes, 0);
      assert.ok(total <= 64 * 1048576, `map memory ${(total / 1048576).toFixed(1)} MiB`);
      const bad = await dp(['install', '--ram-mib', '12']);
      assert.equal(bad.code, 2, bad.stdout);
    } finally {
      assert.equal((await dp(['remove'])).code, 0);
    }
  });

  describe('installed', () => {
    let programIds: number[] = [];

    before(async () => {
      const r = await dp(['install', '--cgroup', cgroup, '--tc-dev', 'n0', '--tc-dev', 'n1', '--cap', 'services=65536,backends=65536,conntrack=16384']);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const out = json(r);
      assert.equal(out.installed, true);
      assert.equal(out.already_installed, false);
      assert.deepEqual(out.programs, ['sock4_connect', 'sock4_sendmsg', 'sock4_getpeername', 'sock4_recvmsg', 'sock6_connect', 'sock6_sendmsg', 'sock6_getpeername', 'sock6_recvmsg', 'tc_lb']);
      assert.equal(typeof out.set_retval, 'boolean');
    });

    it('status shows every program attached and every map with its capacity', async () => {
      const r = await dp(['status']);
      assert.equal(r.code, 0, r.stdout);
      const st = json(r) as {
        installed: boolean; set_retval: boolean; kernel: string; drops: Record<string, number>;
        programs: { name: string; type: string; attach: string; id: number; attached: boolean }[];
        maps: { name: string; type: string; max_entries: number; entries: number | null; memlock_bytes: number | null }[];
      };
      assert.equal(st.installed, true);
      assert.ok(st.kernel.length > 0);
      assert.deepEqual(st.programs.map((p) => p.attach).sort(), [
        `cgroup/connect4 ${cgroup}`, `cgroup/connect6 ${cgroup}`, `cgroup/getpeername4 ${cgroup}`, `cgroup/getpeername6 ${cgroup}`,
        `cgroup/recvmsg4 ${cgroup}`, `cgroup/recvmsg6 ${cgroup}`, `cgroup/sendmsg4 ${cgroup}`, `cgroup/sendmsg6 ${cgroup}`,
        'tc/ingress n0', 'tc/ingress n1',
      ]);
      assert.ok(st.programs.every((p) => p.attached && p.id > 0), JSON.stringify(st.programs));
      const maps = Object.fromEntries(st.maps.map((m) => [m.name, m]));
      assert.deepEqual(Object.keys(maps).sort(), ['affinity', 'affinity6', 'backends', 'backends6', 'conntrack', 'conntrack6', 'drop_counters', 'endpoints', 'endpoints6', 'events', 'events_lost', 'frags', 'ipcache', 'ipcache6', 'maglev', 'node_cfg', 'node_cfg6', 'policy', 'services', 'services6', 'sock_revnat', 'sock_revnat6', 'svc_counters']);
      assert.equal(maps.services?.max_entries, 65536);
      assert.equal(maps.svc_counters?.max_entries, 65536, 'svc_counters follows the services capacity');
      assert.equal(maps.svc_counters?.type, 'percpu_hash');
      assert.equal(maps.conntrack?.max_entries, 16384);
      assert.equal(maps.services?.entries, 0);
      assert.equal(maps.events?.type, 'ringbuf');
      assert.ok(st.maps.every((m) => m.entries !== null && m.memlock_bytes !== null), 'unknown values are left out, not null');
      assert.ok((maps.conntrack?.memlock_bytes ?? 0) > 0);
      assert.equal(st.drops.NO_BACKEND, 0);
      programIds = [...new Set(st.programs.map((p) => p.id))].sort();
      // the kernel agrees
      const now = await attached();
      assert.equal(now.cgroup.length, 8, 'connect, sendmsg, getpeername, recvmsg for IPv4 and IPv6');
      assert.deepEqual(now.tc.map((f) => (f as { devname: string }).devname).sort(), ['n0', 'n1']);
    });

    it('install again is a no-op that says so (exit 0)', async () => {
      const r = await dp(['install', '--cgroup', cgroup, '--tc-dev', 'n0', '--tc-dev', 'n1']);
      assert.equal(r.code, 0, r.stdout);
      const out = json(r) as { already_installed: boolean; matches_request: boolean; programs: { id: number }[] };
      assert.equal(out.already_installed, true);
      assert.equal(out.matches_request, true);
      assert.deepEqual([...new Set(out.programs.map((p) => p.id))].sort(), programIds);
    });

    it('apply checks every line before writing anything', async () => {
      const batch = [
        `put services ${svcKey(VIP, 80, 'tcp')} ${service(1, 1)}`,
        `put backends ${backendKey(1, 0)} ${backend(POD, 8080, 1).slice(2)}`, // one byte short
      ].join('\n');
      const r = await dp(['apply'], batch);
      assert.equal(r.code, 2, r.stdout);
      assert.equal(json(r).code, 'bad-input');
      assert.equal(json(r).line, 2);
      assert.equal((await dp(['dump', 'services'])).stdout, '', 'line 1 was written although line 2 was bad');
      for (const bad of ['put nosuchmap 00 00', 'frob services', `del drop_counters 00000000`, 'put events 00 00']) {
        const b = await dp(['apply'], bad);
        assert.equal(b.code, 2, `${bad}: ${b.stdout}`);
      }
    });

    it('apply writes a service; a socket in the cgroup reaches the backend and sees the VIP', async () => {
      const batch = [
        '# VIP 10.96.0.10:80/tcp -> pod 10.2.0.2:8080',
        `put backends ${backendKey(1, 0)} ${backend(POD, 8080, 1)}`,
        `put services ${svcKey(VIP, 80, 'tcp')} ${service(1, 1)}`,
        `put backends ${backendKey(2, 0)} ${backend(POD, 8080, 1)}`,
        `put services ${svcKey(VIP, 53, 'udp')} ${service(2, 1)}`,
        `del backends ${backendKey(9, 9)}`,
        '',
      ].join('\n');
      const r = await dp(['apply'], batch);
      assert.equal(r.code, 0, r.stdout);
      assert.deepEqual(json(r), { put: 4, deleted: 0, missing: 1, cleared: 0 });
      assert.equal((await dp(['dump', 'services'])).stdout.split('\n').filter(Boolean).sort().join('\n'),
        [`${svcKey(VIP, 53, 'udp')} ${service(2, 1)}`, `${svcKey(VIP, 80, 'tcp')} ${service(1, 1)}`].sort().join('\n'));

      const results = await probe(`${VIP}:80`, true, ['--count', '3']);
      assert.equal(results.length, 3);
      for (const res of results) {
        assert.equal(res.ok, true, JSON.stringify(res));
        assert.equal(res.peer, `${VIP}:80`, 'getpeername() must show the VIP');
        assert.match(res.reply ?? '', /^pod1 10\.1\.0\.2:\d+$/, 'the backend sees the client address');
      }
    });

    it('unconnected UDP from the cgroup is translated both ways (sendmsg4/recvmsg4)', async () => {
      const [res] = await probe(`${VIP}:53`, true, ['--udp']);
      assert.equal(res?.ok, true, JSON.stringify(res));
      assert.equal(res?.peer, `${VIP}:53`, 'recvfrom() must show the VIP');
      assert.match(res?.reply ?? '', /^pod1 10\.1\.0\.2:\d+$/);
    });

    it('a client outside the cgroup is translated by tc_lb on the node (DNAT + reverse NAT)', async () => {
      const before = (await dp(['dump', 'conntrack'])).stdout.split('\n').filter(Boolean).length;
      const [res] = await probe(`${VIP}:80`, false);
      assert.equal(res?.ok, true, JSON.stringify(res));
      assert.equal(res?.peer, `${VIP}:80`);
      assert.match(res?.reply ?? '', /^pod1 10\.1\.0\.2:\d+$/);
      const after = (await dp(['dump', 'conntrack'])).stdout.split('\n').filter(Boolean).length;
      assert.equal(after - before, 2, 'one conntrack entry per direction');
    });

    it('a service without backends is refused, counted and reported as an event', async () => {
      const set = await dp(['apply'], `put services ${svcKey(VIP, 81, 'tcp')} ${service(3, 0)}\n`);
      assert.equal(set.code, 0, set.stdout);
      const setRetval = json(await dp(['status'])).set_retval;
      const [res] = await probe(`${VIP}:81`, true);
      assert.equal(res?.ok, false);
      assert.equal(res?.errno, setRetval ? 'ECONNREFUSED' : 'EPERM');

      // the ring buffer also holds one forwarded event per flow of the tests above
      const ev = await dp(['events', '--timeout-ms', '500']);
      assert.equal(ev.code, 0, ev.stdout);
      const all = ev.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
      const lines = all.filter((l) => l.verdict === 'dropped');
      assert.equal(lines.length, 1, ev.stdout);
      assert.deepEqual(
        { reason: lines[0]?.reason, name: lines[0]?.reason_name, hook: lines[0]?.hook, daddr: lines[0]?.daddr, dport: lines[0]?.dport, proto: lines[0]?.proto, svc: lines[0]?.svc_id },
        { reason: 3, name: 'NO_BACKEND', hook: 'connect4', daddr: VIP, dport: 81, proto: 'tcp', svc: 3 },
      );
      assert.equal(typeof all.at(-1)?.lost, 'number');
      const fwd = all.filter((l) => l.verdict === 'forwarded');
      assert.ok(fwd.every((l) => l.reason === 0), ev.stdout);
      const kinds = (hook: string, svc: number) => fwd.filter((l) => l.hook === hook && l.svc_id === svc);
      assert.equal(kinds('connect4', 1).length, 3, `three connects to VIP:80 from the cgroup: ${ev.stdout}`);
      assert.deepEqual(kinds('connect4', 1).map((l) => [l.daddr, l.dport]), Array(3).fill([POD, 8080]), 'the event names the backend');
      assert.equal(kinds('sendmsg4', 2).length, 1, `one unconnected UDP socket to VIP:53: ${ev.stdout}`);
      assert.equal(kinds('tc', 1).length, 1, `one tc-translated TCP connection from outside the cgroup: ${ev.stdout}`);
      // per service: tc counts packets and bytes (both directions), sockets count connections
      const counters = new Map((await dp(['dump', 'svc_counters'])).stdout.split('\n').filter(Boolean).map((l) => {
        const [k, v] = l.split(' ');
        const b = Buffer.from(v!, 'hex');
        return [Buffer.from(k!, 'hex').readUInt32LE(0), { packets: Number(b.readBigUInt64LE(0)), bytes: Number(b.readBigUInt64LE(8)), connections: Number(b.readBigUInt64LE(16)) }];
      }));
      assert.equal(counters.get(1)?.connections, 3);
      assert.ok((counters.get(1)?.packets ?? 0) >= 4, `a TCP exchange through tc is several packets each way: ${JSON.stringify([...counters])}`);
      assert.ok((counters.get(1)?.bytes ?? 0) >= 40 * (counters.get(1)?.packets ?? 0));
      assert.deepEqual(counters.get(2), { packets: 0, bytes: 0, connections: 1 });
      const fw = json(await dp(['status'])).forwarded as Record<string, number>;
      assert.deepEqual(fw, { services: 2, packets: counters.get(1)!.packets, bytes: counters.get(1)!.bytes, connections: 4 });
      const drops = json(await dp(['status'])).drops as Record<string, number>;
      assert.equal(drops.NO_BACKEND, 1);
    });

    it('metrics: every family in order, each number what status and the raw dumps say, services named from an index', async () => {
      const r = await dp(['metrics']);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const text = r.stdout;
      const m = parsePrometheusText(text);
      // the families dashboards know, in order, with their HELP and TYPE lines exactly
      assert.deepEqual(text.split('\n').filter((l) => l.startsWith('# ')), familyHeaders());
      const samples = (fam: string) => m.get(fam)?.samples ?? [];
      assert.deepEqual(samples('prep_node_datapath_up').map((s) => s.value), [1]);
      // drops: every reason of drop_reasons.h in table order; numbers as the raw per-reason dump decodes them
      const drops = new Map((await dp(['dump', 'drop_counters'])).stdout.split('\n').filter(Boolean).map((l) => {
        const [k, v] = l.split(' ');
        const b = Buffer.from(v!, 'hex');
        return [Buffer.from(k!, 'hex').readUInt32LE(0), { packets: Number(b.readBigUInt64LE(0)), bytes: Number(b.readBigUInt64LE(8)) }];
      }));
      assert.deepEqual(samples('prep_node_datapath_drops_total').map((s) => [s.labels.reason, s.labels.code]), DROP_REASONS.map((x) => [x.name, String(x.num)]));
      for (const x of DROP_REASONS) {
        assert.equal(samples('prep_node_datapath_drops_total').find((s) => s.labels.reason === x.name)!.value, drops.get(x.num)?.packets ?? 0, x.name);
        assert.equal(samples('prep_node_datapath_drop_bytes_total').find((s) => s.labels.reason === x.name)!.value, drops.get(x.num)?.bytes ?? 0, x.name);
      }
      assert.equal(samples('prep_node_datapath_drops_total').find((s) => s.labels.reason === 'NO_BACKEND')!.value, 1, 'the refused connect above');
      // forwarded by service, in the map's order; no index given: service=""
      const svc = (await dp(['dump', 'svc_counters'])).stdout.split('\n').filter(Boolean).map((l) => {
        const [k, v] = l.split(' ');
        const b = Buffer.from(v!, 'hex');
        return { id: String(Buffer.from(k!, 'hex').readUInt32LE(0)), packets: Number(b.readBigUInt64LE(0)), bytes: Number(b.readBigUInt64LE(8)), connections: Number(b.readBigUInt64LE(16)) };
      });
      assert.equal(svc.length, 2);
      for (const [fam, pick] of [['prep_node_datapath_forwarded_packets_total', 'packets'], ['prep_node_datapath_forwarded_bytes_total', 'bytes'], ['prep_node_datapath_service_connections_total', 'connections']] as const) {
        assert.deepEqual(samples(fam).map((s) => [s.labels.service, s.labels.svc_id, s.value]), svc.map((c) => ['', c.id, c[pick]]), fam);
      }
      // maps and programs: what status reports, in its order
      const st = json(await dp(['status'])) as { maps: { name: string; entries?: number; max_entries: number }[]; programs: { name: string; attach: string; attached: boolean }[]; events_lost: number };
      assert.deepEqual(samples('prep_node_datapath_events_lost_total').map((s) => s.value), [st.events_lost]);
      assert.deepEqual(samples('prep_node_datapath_map_capacity').map((s) => [s.labels.map, s.value]), st.maps.map((x) => [x.name, x.max_entries]));
      // counts can move between the two reads (conntrack); which maps have a count cannot
      assert.deepEqual(samples('prep_node_datapath_map_entries').map((s) => s.labels.map), st.maps.filter((x) => x.entries !== undefined).map((x) => x.name));
      assert.equal(samples('prep_node_datapath_map_entries').find((s) => s.labels.map === 'events'), undefined, 'the ring buffer has no entry count');
      assert.equal(samples('prep_node_datapath_map_entries').find((s) => s.labels.map === 'services')!.value, st.maps.find((x) => x.name === 'services')!.entries);
      assert.deepEqual(samples('prep_node_datapath_program_attached').map((s) => [s.labels.program, s.labels.attach, s.value]), st.programs.map((p) => [p.name, p.attach, p.attached ? 1 : 0]));
      assert.equal(st.programs.length, 10, '8 cgroup programs (IPv4 and IPv6), tc_lb on n0 and n1');

      // an index names services: JSON escapes decoded (UTF-8 from \u and surrogate pairs), then
      // backslash, quote and newline escaped as the exposition format wants; an id it lacks stays ""
      const names = `${scratch}/names.json`;
      writeFileSync(names, JSON.stringify({ version: 1, synced_at: 'now', source: 'test', endpoints: { '10.2.0.2': { name: 'pod', labels: {}, identity: 5, default_deny: { ingress: [], egress: [] } } }, identities: {}, cidrs: {}, services: { 1: { name: 'ns/a"b\\c\nd é\u{1F642}\t', vip: VIP, port: 80, protocol: 'tcp' }, 99: { name: 'gone', vip: VIP, port: 1, protocol: 'tcp' } }, rules: {} }).replace('é', '\\u00e9').replace('\u{1F642}', '\\ud83d\\ude42'));
      const named = await dp(['metrics', '--names', names]);
      assert.equal(named.code, 0, named.stdout + named.stderr);
      assert.equal(named.stderr, '');
      assert.ok(named.stdout.includes('prep_node_datapath_service_connections_total{service="ns/a\\"b\\\\c\\nd é\u{1F642}\t",svc_id="1"} 3\n'), named.stdout);
      assert.match(named.stdout, /^prep_node_datapath_service_connections_total\{service="",svc_id="2"\} 1$/m);
      const nm = parsePrometheusText(named.stdout);
      assert.equal(nm.get('prep_node_datapath_forwarded_packets_total')!.samples.find((s) => s.labels.svc_id === '1')!.labels.service, 'ns/a"b\\c\nd é\u{1F642}\t');
      // a broken index: the same text as without one, and one line saying why
      writeFileSync(names, '{"version":1,"services":{"1":{"name":"x"}');
      const broken = await dp(['metrics', '--names', names]);
      assert.equal(broken.code, 0);
      assert.match(broken.stderr, /^prep-node-dp metrics: no service names from .*names\.json: not a version-1 names index \(JSON\)\n$/);
      assert.doesNotMatch(broken.stdout, /service="x"/);
    });

    it('remove from another network namespace is refused and changes nothing', async () => {
      const before = await attached();
      const r = await run(DP, ['--bpffs', bpffs, 'remove']);
      assert.equal(r.code, 7, r.stdout);
      assert.equal(json(r).code, 'wrong-netns');
      assert.deepEqual(await attached(), before);
    });

    it('remove detaches and unpins everything; nothing of ours is left in the kernel', async () => {
      const r = await dp(['remove']);
      assert.equal(r.code, 0, r.stdout);
      const out = json(r) as { removed: boolean; detached: string[] };
      assert.equal(out.removed, true);
      assert.equal(out.detached.length, 10, JSON.stringify(out));
      const now = await settled({ progs: [], links: [], cgroup: [], tc: [] });
      assert.deepEqual(now.cgroup, []);
      assert.deepEqual(now.tc, []);
      for (const id of programIds) assert.ok(!now.progs.includes(id), `program ${id} still loaded`);
      assert.deepEqual(now.links, []);
      assert.doesNotMatch(await must('tc', '-n', ns.node, 'qdisc', 'show'), /clsact/, 'the clsact qdiscs we created must go');
      assert.equal(existsSync(`${bpffs}/prep-node`), false);
      // sockets are left alone again: the VIP is just an unrouted address now
      const [res] = await probe(`${VIP}:80`, true, ['--timeout-ms', '300']);
      assert.equal(res?.ok, false);
      const again = await dp(['remove']);
      assert.deepEqual(json(again), { removed: false, reason: 'not installed' });
    });
  });
});
