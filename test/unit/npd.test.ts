// `prep-node npd`: the node-problem-detector monitor against NPD's documented format
// (docs/custom_plugin_monitor.md), and the POSIX sh plugin run for real — on fixture trees through
// PREP_NODE_ROOT for every outcome of every area (with dash, bash --posix, and busybox sh with only
// busybox's applets on the PATH, as on a minimal node), and read-only on this machine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, chmodSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AREAS, MAX_OUTPUT_LENGTH, goDurationMs, monitorConfig } from '../../src/npd/monitor.js';
import { npd, PLUGIN_SCRIPT } from '../../src/commands/npd.js';
import { UsageError } from '../../src/errors.js';

const SCRIPT = fileURLToPath(PLUGIN_SCRIPT);
const PATH_BIN = '/usr/bin/busybox';

function io() {
  let out = '';
  return { io: { stdout: { write: (s: string) => ((out += s), true) } as unknown as NodeJS.WritableStream, stderr: process.stderr, version: 'test' }, out: () => out };
}

/** Busybox's applets alone on a PATH: what a minimal node without coreutils or Node.js has. */
function busyboxPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'pn-bb-'));
  for (const app of ['sh', 'awk', 'cut', 'sed', 'ls', 'wc', 'date', 'id', 'mv', 'rm', 'cat', 'printf']) symlinkSync(PATH_BIN, join(dir, app));
  return dir;
}
const SHELLS: { name: string; argv: string[]; env?: Record<string, string> }[] = [
  { name: 'dash', argv: ['/usr/bin/dash'] },
  { name: 'bash --posix', argv: ['/usr/bin/bash', '--posix'] },
  ...(existsSync(PATH_BIN) ? [{ name: 'busybox sh', argv: [PATH_BIN, 'sh'], env: { PATH: busyboxPath() } }] : []),
];

function run(shell: (typeof SHELLS)[number], args: string[], root?: string) {
  const r = spawnSync(shell.argv[0]!, [...shell.argv.slice(1), SCRIPT, ...args], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...shell.env, ...(root !== undefined && { PREP_NODE_ROOT: root }) },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

// A node's files as the script reads them, written under a fresh root.
type Tree = Record<string, string | null>; // null: a directory
const HEALTHY: Tree = {
  'proc/mounts': 'sysfs /sys sysfs rw 0 0\ncgroup2 /sys/fs/cgroup cgroup2 rw 0 0\nbpf /sys/fs/bpf bpf rw 0 0\n',
  'sys/fs/cgroup/cgroup.controllers': 'cpuset cpu io memory hugetlb pids rdma misc\n',
  'proc/sys/kernel/osrelease': '6.1.0-28-amd64\n',
  'sys/kernel/btf/vmlinux': '',
  'proc/sys/net/ipv4/ip_forward': '1\n',
  'proc/swaps': 'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n',
  'sys/module/br_netfilter': null,
  'proc/sys/net/bridge/bridge-nf-call-iptables': '1\n',
  'proc/sys/net/netfilter/nf_conntrack_max': '262144\n',
  'proc/sys/net/netfilter/nf_conntrack_count': '1200\n',
  'sys/fs/bpf/prep-node/state': '',
  'sys/fs/bpf/prep-node/maps/services': '',
  'sys/fs/bpf/prep-node/links/sock_connect4': '',
};

function tree(t: Tree): string {
  const root = mkdtempSync(join(tmpdir(), 'pn-root-'));
  for (const [p, content] of Object.entries(t)) {
    const full = join(root, p);
    if (content === null) mkdirSync(full, { recursive: true });
    else {
      mkdirSync(dirname(full), { recursive: true });
      writeFileSync(full, content);
    }
  }
  return root;
}
const without = (...keys: string[]): Tree => Object.fromEntries(Object.entries(HEALTHY).filter(([k]) => !keys.some((x) => k === x || k.startsWith(`${x}/`))));
const withFile = (k: string, v: string | null): Tree => ({ ...HEALTHY, [k]: v });

test('the monitor is NPD\'s documented custom plugin format, one permanent rule per area', () => {
  const c = monitorConfig({ pluginPath: '/etc/node-problem-detector.d/plugin/prep-node-check.sh', interval: '60s' });
  assert.equal(c.plugin, 'custom');
  assert.deepEqual(Object.keys(c.pluginConfig).sort(), ['concurrency', 'enable_message_change_based_condition_update', 'invoke_interval', 'max_output_length', 'timeout']);
  const every = goDurationMs(c.pluginConfig.invoke_interval)!;
  const timeout = goDurationMs(c.pluginConfig.timeout)!;
  assert.ok(timeout > 0 && timeout <= every, 'a plugin run ends before the next is due');
  assert.ok(Number.isInteger(c.pluginConfig.max_output_length) && Number.isInteger(c.pluginConfig.concurrency) && c.pluginConfig.concurrency >= 1);
  assert.match(c.source, /^[a-z0-9-]+$/);
  const types = new Set(c.conditions.map((x) => x.type));
  assert.equal(types.size, AREAS.length, 'condition types are distinct');
  for (const cond of c.conditions) {
    assert.match(cond.type, /^[A-Z][A-Za-z]+Problem$/);
    assert.match(cond.reason, /^[A-Z][A-Za-z0-9]+$/, 'reasons are CamelCase, as the API wants');
    assert.ok(cond.message.length > 0 && cond.message.length <= MAX_OUTPUT_LENGTH);
  }
  for (const r of c.rules) {
    assert.equal(r.type, 'permanent');
    assert.ok(types.has(r.condition), `rule for a defined condition ${r.condition}`);
    assert.match(r.reason, /^[A-Z][A-Za-z0-9]+$/);
    assert.ok(goDurationMs(r.timeout)! <= timeout);
    assert.equal(r.path, '/etc/node-problem-detector.d/plugin/prep-node-check.sh');
  }
  // The script's own list of areas is the monitor's.
  const listed = run(SHELLS[0]!, ['areas']).out.trim().split('\n');
  assert.deepEqual(c.rules.map((r) => r.args[0]).sort(), [...listed].sort());
  assert.equal(readFileSync(SCRIPT, 'utf8').match(/^MAX=(\d+)$/m)?.[1], String(c.pluginConfig.max_output_length), 'the script cuts at max_output_length');
});

test('Go durations are parsed as NPD parses them', () => {
  assert.equal(goDurationMs('60s'), 60_000);
  assert.equal(goDurationMs('1m30s'), 90_000);
  assert.equal(goDurationMs('500ms'), 500);
  for (const bad of ['', '60', '5x', 's', '1m 2s']) assert.equal(goDurationMs(bad), undefined, bad);
});

test('npd --out writes the four files (the plugin as shipped, executable); bad input is one line, exit 2', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pn-npd-'));
  try {
    const { io: fake, out } = io();
    assert.equal(await npd({ out: dir, pluginPath: '/opt/npd/plugin/prep-node-check.sh', interval: '2m' }, fake), 0);
    assert.deepEqual(readdirSync(dir).sort(), ['prep-node-check.sh', 'prep-node-monitor.json', 'prep-node-nfd.service', 'prep-node-nfd.timer']);
    assert.equal(out().trim().split('\n').length, 4);
    const mon = JSON.parse(readFileSync(join(dir, 'prep-node-monitor.json'), 'utf8')) as ReturnType<typeof monitorConfig>;
    assert.equal(mon.pluginConfig.invoke_interval, '2m');
    assert.ok(mon.rules.every((r) => r.path === '/opt/npd/plugin/prep-node-check.sh'));
    assert.equal(readFileSync(join(dir, 'prep-node-check.sh'), 'utf8'), readFileSync(SCRIPT, 'utf8'));
    assert.equal(statSync(join(dir, 'prep-node-check.sh')).mode & 0o777, 0o755);
    assert.match(readFileSync(join(dir, 'prep-node-nfd.service'), 'utf8'), /^ExecStart=\/opt\/npd\/plugin\/prep-node-check.sh nfd-write$/m);
    for (const [o, re] of [
      [{}, /--out DIR is required/],
      [{ out: join(dir, 'nope') }, /is not a directory/],
      [{ out: dir, interval: '5s' }, /at least 10s/],
      [{ out: dir, pluginPath: 'relative/x.sh' }, /absolute path/],
      [{ out: dir, pluginPath: '/x $(reboot).sh' }, /without spaces/],
    ] as const) {
      await assert.rejects(npd(o, io().io), (e: Error) => e instanceof UsageError && re.test(e.message) && !e.message.includes('\n'));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// area → cases: [the tree, the exit code NPD expects, what the line says]
const CASES: Record<string, [Tree, number, RegExp][]> = {
  bpffs: [
    [HEALTHY, 0, /bpffs mounted/],
    [withFile('proc/mounts', 'cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n'), 1, /not mounted/],
    [withFile('proc/mounts', 'tmpfs /sys/fs/bpf tmpfs rw 0 0\n'), 1, /is tmpfs, not bpffs/],
    [without('proc/mounts'), 2, /cannot read/],
  ],
  cgroup: [
    [HEALTHY, 0, /cgroup2/],
    [withFile('proc/mounts', 'tmpfs /sys/fs/cgroup tmpfs rw 0 0\n'), 1, /tmpfs, not cgroup2/],
    [withFile('sys/fs/cgroup/cgroup.controllers', 'cpu io memory\n'), 1, /missing: cpuset pids/],
    [without('sys/fs/cgroup/cgroup.controllers'), 2, /cannot read/],
  ],
  kernel: [
    [HEALTHY, 0, /kernel 6\.1 with BTF/],
    [withFile('proc/sys/kernel/osrelease', '4.19.0-27-amd64\n'), 1, /4\.19 below 5\.10/],
    [without('sys/kernel/btf'), 1, /without BTF/],
    [withFile('proc/sys/kernel/osrelease', 'weird\n'), 2, /not understood/],
  ],
  kubelet: [
    [HEALTHY, 0, /swap off/],
    [withFile('proc/sys/net/ipv4/ip_forward', '0\n'), 1, /ip_forward = 0, expected 1/],
    [withFile('proc/swaps', `${HEALTHY['proc/swaps']!}/dev/vda2 partition 1048572 0 -2\n`), 1, /swap is on \(1 devices\)/],
    [without('sys/module/br_netfilter'), 1, /modprobe br_netfilter/],
    [withFile('proc/sys/net/bridge/bridge-nf-call-iptables', '0'), 1, /expected 1/],
    [without('proc/sys/net/ipv4/ip_forward'), 2, /cannot read/],
  ],
  conntrack: [
    [HEALTHY, 0, /0% full \(1200 of 262144\)/],
    [withFile('proc/sys/net/netfilter/nf_conntrack_count', '250000\n'), 1, /95% full/],
    [without('proc/sys/net/netfilter'), 2, /not loaded/],
  ],
  datapath: [
    [HEALTHY, 0, /installed/],
    [without('sys/fs/bpf/prep-node'), 1, /not installed/],
    [without('sys/fs/bpf/prep-node/links'), 1, /incomplete/],
    [withFile('proc/mounts', 'cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n'), 1, /no bpffs/],
  ],
};

for (const shell of SHELLS) {
  test(`every area's outcomes from fixture trees (${shell.name}): exit 0/1/2, one line within max_output_length`, () => {
    assert.deepEqual(Object.keys(CASES).sort(), AREAS.map((a) => a.area).sort(), 'every area has cases');
    for (const [area, cases] of Object.entries(CASES)) {
      for (const [t, code, re] of cases) {
        const root = tree(t);
        try {
          const r = run(shell, [area], root);
          assert.equal(r.code, code, `${area}: ${r.out}${r.err}`);
          assert.match(r.out, re, area);
          assert.equal(r.out.split('\n').length, 2, 'one line');
          assert.ok(Buffer.byteLength(r.out.trimEnd()) <= MAX_OUTPUT_LENGTH);
          assert.equal(r.err, '', `${area} writes nothing on stderr`);
        } finally {
          rmSync(root, { recursive: true, force: true });
        }
      }
    }
  });
}

test('a message longer than max_output_length is cut by the script itself', () => {
  const root = tree(withFile('proc/mounts', `tmpfs /sys/fs/bpf ${'x'.repeat(200)} rw 0 0\n`));
  try {
    const r = run(SHELLS[0]!, ['bpffs'], root);
    assert.equal(r.code, 1);
    assert.equal(r.out.trimEnd().length, MAX_OUTPUT_LENGTH);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

// Label names and values as the API accepts them (a qualified name; a value of at most 63 characters).
const LABEL = /^prep-node\.feature\.node\.kubernetes\.io\/[a-z0-9]([-a-z0-9]*[a-z0-9])?=([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$/;

test('nfd: node-feature-discovery feature lines (name=value, valid labels) that follow the node', () => {
  const root = tree(HEALTHY);
  try {
    const lines = run(SHELLS[0]!, ['nfd'], root).out.trim().split('\n');
    for (const l of lines) assert.match(l, LABEL);
    assert.deepEqual(lines.map((l) => l.replace(/^[^/]+\//, '')), ['bpffs=true', 'cgroup-v2=true', 'kernel-btf=true', 'kernel-version=6.1', 'datapath=ready', 'checks-ok=true']);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  const bad = tree(without('sys/fs/bpf/prep-node', 'sys/kernel/btf'));
  try {
    const out = run(SHELLS[0]!, ['nfd'], bad).out;
    assert.match(out, /\/kernel-btf=false$/m);
    assert.match(out, /\/datapath=absent$/m);
    assert.match(out, /\/checks-ok=false$/m);
  } finally {
    rmSync(bad, { recursive: true, force: true });
  }
});

test('nfd-write: the feature file written whole (expiry directive, no temporary left); a directory others control is refused', () => {
  const root = tree(HEALTHY);
  const dir = mkdtempSync(join(tmpdir(), 'pn-fd-'));
  try {
    chmodSync(dir, 0o755);
    for (const shell of SHELLS) {
      const r = run(shell, ['nfd-write', dir], root);
      assert.equal(r.code, 0, `${shell.name}: ${r.err}`);
      assert.deepEqual(readdirSync(dir), ['prep-node'], shell.name);
      const [first, ...rest] = readFileSync(join(dir, 'prep-node'), 'utf8').trim().split('\n');
      assert.match(first!, /^# \+expiry-time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      const at = Date.parse(first!.split('=')[1]!);
      assert.ok(at > Date.now() + 25 * 60_000 && at < Date.now() + 35 * 60_000, 'about 30 minutes ahead');
      for (const l of rest) assert.match(l, LABEL);
    }
    chmodSync(dir, 0o777);
    const r = run(SHELLS[0]!, ['nfd-write', dir], root);
    assert.equal(r.code, 2);
    assert.match(r.err, /writable by group or others: chmod go-w/);
    const missing = run(SHELLS[0]!, ['nfd-write', join(dir, 'nope')], root);
    assert.equal(missing.code, 2);
    assert.match(missing.err, /is not a directory/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(root, { recursive: true, force: true });
  }
});

test('on this machine, read-only: each area says one line and exits 0, 1 or 2; bpffs agrees with /proc/mounts', () => {
  for (const { area } of AREAS) {
    const r = run(SHELLS[0]!, [area]);
    assert.ok(r.code === 0 || r.code === 1 || r.code === 2, `${area}: exit ${String(r.code)}`);
    assert.equal(r.out.split('\n').length, 2, `${area}: ${r.out}`);
    assert.ok(Buffer.byteLength(r.out.trimEnd()) <= MAX_OUTPUT_LENGTH);
  }
  const bpf = readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => l.split(' ')[1] === '/sys/fs/bpf').pop()?.split(' ')[2];
  assert.equal(run(SHELLS[0]!, ['bpffs']).code, bpf === 'bpf' ? 0 : 1);
  const release = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim().match(/^(\d+\.\d+)/)![1]!;
  assert.match(run(SHELLS[0]!, ['nfd']).out, new RegExp(`/kernel-version=${release.replace('.', '\\.')}$`, 'm'));
  const usage = run(SHELLS[0]!, ['bogus']);
  assert.equal(usage.code, 2);
  assert.match(usage.err, /^usage: /);
});
