// The facts the preflight-parity checks (node.cpu, node.memory, disk.space, net.ports, node.binaries,
// runtime.socket, node.hostname, net.localhost, node.nofile, security.lsm, datapath.memory) and the
// fleet checks share: one remote script per host (memo key `node.facts`), `@@ name` sections parsed by
// pure functions tested on recorded outputs. Nothing here needs root except product_uuid (0400 root),
// read with `sudo -n` when the login user is not root and left out when sudo would ask.
import { memo, type ProbeContext } from './context.js';
import { parseSections } from './sections.js';

/** kubeadm's InPathCheck list (cmd/kubeadm/app/preflight/checks_linux.go, addExecChecks). */
export const MANDATORY_BINARIES = ['ip', 'iptables', 'mount', 'nsenter'] as const;
/** kubeadm warns without these; conntrack is mandatory for Kubernetes < 1.32 (kubernetes/kubernetes#126952). */
export const OPTIONAL_BINARIES = ['conntrack', 'ebtables', 'ethtool', 'socat', 'tc', 'touch'] as const;
/** Looked up for other checks: nft (kube-proxy's nftables mode), apparmor_parser (security.lsm). */
const EXTRA_BINARIES = ['nft', 'apparmor_parser'] as const;
export const BINARIES = [...MANDATORY_BINARIES, ...OPTIONAL_BINARIES, ...EXTRA_BINARIES] as const;

/** kubeadm's known CRI endpoints (cmd/kubeadm/app/util/runtime: defaultKnownCRISockets) and CRI-O's /run path. */
export const CRI_SOCKETS = ['/var/run/containerd/containerd.sock', '/run/containerd/containerd.sock', '/var/run/crio/crio.sock', '/run/crio/crio.sock', '/var/run/cri-dockerd.sock'] as const;

/** The script; `$1` is the directory whose free space disk.space judges. */
export function nodeFactsScript(diskPath: string): string {
  return [
    `echo '@@ nproc'; nproc 2>/dev/null`,
    `echo '@@ meminfo'; grep -E '^(MemTotal|MemAvailable):' /proc/meminfo`,
    // POSIX output format (-P): one line per filesystem whatever the device name's length.
    `echo '@@ df'; df -Pk '${diskPath.replace(/'/g, '')}' 2>&1`,
    `echo '@@ tcp'; cat /proc/net/tcp /proc/net/tcp6 2>/dev/null`,
    // Debian and Ubuntu leave /usr/sbin out of a non-root user's PATH: look there too.
    `echo '@@ binaries'; for b in ${BINARIES.join(' ')}; do p=$(command -v "$b" 2>/dev/null); for d in /usr/sbin /sbin /usr/bin /bin; do if [ -z "$p" ] && [ -x "$d/$b" ]; then p="$d/$b"; fi; done; echo "$b \${p:--}"; done`,
    `echo '@@ sockets'; for s in ${CRI_SOCKETS.join(' ')}; do if [ -S "$s" ]; then echo "$s"; fi; done`,
    `echo '@@ hostname'; cat /proc/sys/kernel/hostname`,
    // A resolver that does not answer must not stall the whole read: 5 s each (timeout exits 124).
    `T=; if command -v timeout >/dev/null 2>&1; then T='timeout 5'; fi`,
    `echo '@@ resolve-hostname'; $T getent ahosts "$(cat /proc/sys/kernel/hostname)" 2>&1; echo "rc=$?"`,
    `echo '@@ resolve-localhost'; $T getent ahosts localhost 2>&1; echo "rc=$?"`,
    `echo '@@ nofile'; echo "shell-soft $(ulimit -Sn)"; echo "shell-hard $(ulimit -Hn)"`,
    `if [ -d /run/systemd/system ]; then systemctl show -p DefaultLimitNOFILE -p DefaultLimitNOFILESoft 2>/dev/null; fi`,
    `echo '@@ lsm'; cat /sys/kernel/security/lsm 2>/dev/null; echo`,
    `echo '@@ apparmor'; cat /sys/module/apparmor/parameters/enabled 2>/dev/null`,
    `echo '@@ selinux'; if [ -e /sys/fs/selinux/enforce ]; then cat /sys/fs/selinux/enforce; fi`,
    `echo '@@ machine-id'; cat /etc/machine-id 2>/dev/null`,
    `echo '@@ product-uuid'; if [ -r /sys/class/dmi/id/product_uuid ]; then cat /sys/class/dmi/id/product_uuid; elif [ -e /sys/class/dmi/id/product_uuid ]; then sudo -n cat /sys/class/dmi/id/product_uuid 2>/dev/null; else echo no-dmi; fi`,
    `echo '@@ macs'; for d in /sys/class/net/*; do if [ -e "$d/device" ]; then echo "\${d##*/} $(cat "$d/address" 2>/dev/null)"; fi; done`,
    `echo '@@ kernel'; uname -r`,
    `echo '@@ cgroupfs'; stat -fc %T /sys/fs/cgroup 2>/dev/null`,
    'exit 0',
  ].join('\n');
}

export interface Resolution {
  ok: boolean;
  addresses: string[];
  /** getent's last line when it failed (empty: the name is unknown). */
  error: string;
}

export interface NodeFacts {
  cpus: number | null;
  memTotalKiB: number | null;
  memAvailableKiB: number | null;
  disk: { path: string; availableKiB: number; sizeKiB: number; mountedOn: string } | { path: string; error: string };
  /** TCP ports some socket listens on (IPv4 or IPv6, any address). */
  listening: Set<number>;
  /** binary → path, or null when not found. */
  binaries: Map<string, string | null>;
  sockets: string[];
  hostname: string;
  resolveHostname: Resolution;
  resolveLocalhost: Resolution;
  nofile: { shellSoft: number | null; shellHard: number | null; systemdSoft: number | null; systemdHard: number | null };
  lsm: string[];
  apparmor: boolean | null;
  /** null: SELinux not enabled (no selinuxfs); true enforcing; false permissive. */
  selinuxEnforcing: boolean | null;
  machineId: string | null;
  productUuid: string | null;
  /** Why productUuid is null: the machine has no DMI table, or reading it needs root. */
  productUuidMissing: 'no DMI table' | 'needs root or passwordless sudo' | null;
  /** interface → MAC of physical interfaces. */
  macs: Map<string, string>;
  kernel: string;
  /** 2 for cgroup2fs at /sys/fs/cgroup, 1 for tmpfs (v1 or hybrid), null when unknown. */
  cgroupVersion: 1 | 2 | null;
}

/** Read the node facts once per host and run; `diskPath` is the directory whose free space is read. */
export function nodeFacts(ctx: ProbeContext, diskPath: string): Promise<NodeFacts> {
  return memo(ctx, `node.facts:${diskPath}`, async () => {
    const r = await ctx.host.run(nodeFactsScript(diskPath), { timeoutMs: 30_000 });
    if (r.code !== 0) throw new Error(`reading node facts failed (exit ${r.code ?? 'timeout'}): ${r.stderr.trim() || r.stdout.trim()}`);
    return parseNodeFacts(r.stdout, diskPath);
  });
}

function int(text: string | undefined): number | null {
  const t = (text ?? '').trim();
  return /^\d+$/.test(t) ? Number(t) : null;
}

/** `rc=N` on the last line; the rest is getent's output: "ADDR STREAM name" lines. */
export function parseResolution(raw: string | undefined): Resolution {
  const lines = (raw ?? '').split('\n');
  const rcLine = lines.length > 0 && /^rc=\d+$/.test(lines[lines.length - 1]!) ? lines.pop()! : 'rc=1';
  const ok = rcLine === 'rc=0';
  const addresses = [...new Set(lines.map((l) => l.trim().split(/\s+/)[0] ?? '').filter((a) => /^[0-9a-fA-F.:]+$/.test(a) && a.length > 0))];
  const error = rcLine === 'rc=124' ? 'no answer within 5 s' : ok ? '' : lines.filter(Boolean).pop() ?? '';
  return { ok: ok && addresses.length > 0, addresses, error };
}

/** Listening TCP ports from /proc/net/tcp and tcp6 (state 0A = TCP_LISTEN; local address HEX:PORT). */
export function parseListening(text: string): Set<number> {
  const ports = new Set<number>();
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4 || f[3] !== '0A') continue;
    const m = /:([0-9A-Fa-f]{4})$/.exec(f[1] ?? '');
    if (m) ports.add(parseInt(m[1]!, 16));
  }
  return ports;
}

/** `df -Pk PATH`: header, then "fs 1024-blocks used available capacity mounted-on". */
export function parseDf(text: string, path: string): NodeFacts['disk'] {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const data = lines.find((l, i) => i > 0 && /\s\d+\s+\d+\s+\d+\s+\d+%\s+\//.test(l));
  if (!data) return { path, error: lines.pop()?.trim() || 'df printed nothing' };
  const m = /\s(\d+)\s+(\d+)\s+(\d+)\s+(\d+)%\s+(\/.*)$/.exec(data)!;
  return { path, sizeKiB: Number(m[1]), availableKiB: Number(m[3]), mountedOn: m[5]! };
}

function limit(text: string | undefined): number | null {
  const t = (text ?? '').trim();
  if (t === 'unlimited' || t === 'infinity') return Number.MAX_SAFE_INTEGER;
  return int(t);
}

/** Parse nodeFactsScript's output; pure. */
export function parseNodeFacts(out: string, diskPath: string): NodeFacts {
  const s = parseSections(out);
  const mem = new Map<string, number>();
  for (const m of (s.get('meminfo') ?? '').matchAll(/^(\w+):\s+(\d+) kB$/gm)) mem.set(m[1]!, Number(m[2]));
  const binaries = new Map<string, string | null>();
  for (const line of (s.get('binaries') ?? '').split('\n')) {
    const [name, path] = line.trim().split(/\s+/);
    if (name && path) binaries.set(name, path === '-' ? null : path);
  }
  const nofile = new Map<string, string>();
  for (const line of (s.get('nofile') ?? '').split('\n')) {
    const m = /^([\w-]+)[ =](.*)$/.exec(line.trim());
    if (m) nofile.set(m[1]!, m[2]!);
  }
  const macs = new Map<string, string>();
  for (const line of (s.get('macs') ?? '').split('\n')) {
    const [name, mac] = line.trim().split(/\s+/);
    if (name && mac && /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(mac)) macs.set(name, mac.toLowerCase());
  }
  const aa = (s.get('apparmor') ?? '').trim();
  const se = (s.get('selinux') ?? '').trim();
  const cg = (s.get('cgroupfs') ?? '').trim();
  const machineId = (s.get('machine-id') ?? '').trim();
  const uuid = (s.get('product-uuid') ?? '').trim();
  return {
    cpus: int(s.get('nproc')),
    memTotalKiB: mem.get('MemTotal') ?? null,
    memAvailableKiB: mem.get('MemAvailable') ?? null,
    disk: parseDf(s.get('df') ?? '', diskPath),
    listening: parseListening(s.get('tcp') ?? ''),
    binaries,
    sockets: (s.get('sockets') ?? '').split('\n').map((l) => l.trim()).filter(Boolean),
    hostname: (s.get('hostname') ?? '').trim(),
    resolveHostname: parseResolution(s.get('resolve-hostname')),
    resolveLocalhost: parseResolution(s.get('resolve-localhost')),
    nofile: {
      shellSoft: limit(nofile.get('shell-soft')),
      shellHard: limit(nofile.get('shell-hard')),
      systemdSoft: limit(nofile.get('DefaultLimitNOFILESoft')),
      systemdHard: limit(nofile.get('DefaultLimitNOFILE')),
    },
    lsm: (s.get('lsm') ?? '').trim().split(',').filter(Boolean),
    apparmor: aa === 'Y' ? true : aa === 'N' ? false : null,
    selinuxEnforcing: se === '1' ? true : se === '0' ? false : null,
    // An empty or "uninitialized" machine-id (systemd's first-boot marker) is no identity.
    machineId: /^[0-9a-f]{32}$/.test(machineId) ? machineId : null,
    productUuid: /^[0-9A-Fa-f-]{32,36}$/.test(uuid) ? uuid.toLowerCase() : null,
    productUuidMissing: /^[0-9A-Fa-f-]{32,36}$/.test(uuid) ? null : uuid === 'no-dmi' ? 'no DMI table' : 'needs root or passwordless sudo',
    macs,
    kernel: (s.get('kernel') ?? '').trim(),
    cgroupVersion: cg === 'cgroup2fs' ? 2 : cg === 'tmpfs' ? 1 : null,
  };
}
