// Runs INSIDE `unshare --mount --net` (test/kernel/round-trips.test.ts starts it): makes /etc and
// /var/lib private copies and brings up loopback, starts the real sshd of sshd.ts at LogLevel DEBUG1
// on 127.0.0.1 of this private network namespace, and runs the CLI's check, apply --dry-run, apply,
// rollback --dry-run and rollback against root@127.0.0.1 over it, with a 3-sysctl profile and then
// with the parts of k8s-worker the sandbox can apply (K8S_WORKER_PART). For each it counts the session
// channels sshd opened (`server_input_channel_open: ctype session` lines in its log) and the wall
// time, and prints one JSON line. Sysctls applied are per network namespace; files land in the
// private /etc and /var/lib: the machine is unchanged when the namespaces go.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { authorize, makeClientKey, startSshd } from './sshd.js';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

export const PROFILE = `name: round-trips
description: per-namespace sysctls only, so apply can run on the machine's own kernel
kernel: {min: "5.10", recommended: "5.15"}
sysctl:
  net.core.somaxconn: 12345
  net.ipv4.tcp_tw_reuse: 1
  net.ipv4.ip_local_port_range: "20000\\t60999"
modules: []
bpffs: false
mtu: {apply: false}
channels: keep
`;

/**
 * The parts of profiles/k8s-worker.yaml this sandbox can apply, with that profile's values (the
 * round-trips test checks them against the file): its sysctls that are per network namespace and
 * writable there, and bpffs (mounted in the private mount namespace, its fstab line in the private
 * /etc). Left out: fs.file-max and vm.max_map_count (one value for the whole machine),
 * nf_conntrack_max (read-only outside the initial network namespace), the modules (loading them
 * changes the machine's kernel, and this machine has no /proc/modules), the MTU and channels (no
 * physical interface here). The Debian 12 VM applies the whole profile (test/vagrant).
 */
export const K8S_WORKER_PART = `name: k8s-worker-netns
description: the parts of k8s-worker a network and mount namespace can apply
kernel: {min: "5.10", recommended: "5.15"}
sysctl:
  net.ipv4.ip_forward: 1
  net.ipv4.ip_local_port_range: "1024\t60999"
  net.ipv4.ip_local_reserved_ports: "30000-32767"
  net.ipv4.tcp_tw_reuse: 1
  net.core.somaxconn: 32768
modules: []
bpffs: true
mtu: {apply: false}
channels: keep
`;

export interface Counted {
  command: string;
  exit: number | null;
  sessions: number;
  ms: number;
  output: string;
  /** What sshd logged during a run that failed (empty when it succeeded). */
  sshdLog: string;
}

const SESSION = /server_input_channel_open: ctype session/g;

function runCli(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.once('error', reject);
    child.once('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

async function main(): Promise<void> {
  // It mounts over /etc and /var/lib: only inside mount and network namespaces other than its
  // parent's, as `unshare --mount --net` gives it (a run
  // without them once left the machine's /etc and /var/lib hidden under its tmpfs).
  for (const ns of ['mnt', 'net'])
    if (readlinkSync(`/proc/self/ns/${ns}`) === readlinkSync(`/proc/${process.ppid}/ns/${ns}`)) {
      process.stderr.write(`round-trips-sandbox: not in a ${ns} namespace of its own: run it as test/kernel/round-trips.test.ts does (unshare --mount --net)\n`);
      process.exit(2);
    }
  const dir = mkdtempSync(join(tmpdir(), 'pn-rt-'));
  const sh = (script: string) => execFileSync('sh', ['-ec', script], { stdio: 'pipe' });
  sh(
    [
      'mount --make-rprivate /',
      'ip link set lo up',
      `mkdir ${dir}/etc && mount -t tmpfs sandbox-etc ${dir}/etc && cp -a /etc/. ${dir}/etc/ && mount --bind ${dir}/etc /etc`,
      'rm -f /etc/sysctl.d/90-prep-node.conf',
      'mount -t tmpfs sandbox-varlib /var/lib',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'profile.yaml'), PROFILE);
  writeFileSync(join(dir, 'k8s-worker-part.yaml'), K8S_WORKER_PART);
  const sshd = await startSshd({ logLevel: 'DEBUG1' });
  const results: Counted[] = [];
  try {
    const key = await makeClientKey(dir);
    await authorize(sshd, 'root', key.publicKey);
    writeFileSync(join(dir, 'known_hosts'), sshd.knownHostsLine() + '\n');
    writeFileSync(
      join(dir, 'ssh_config'),
      ['Host *', `  UserKnownHostsFile ${join(dir, 'known_hosts')}`, '  GlobalKnownHostsFile /dev/null', `  IdentityFile ${key.privateKeyPath}`, '  IdentitiesOnly yes', '  IdentityAgent none', ''].join('\n'),
    );
    const target = `root@127.0.0.1:${sshd.port}`;
    const common = ['-F', join(dir, 'ssh_config')];
    // Each series ends with rollback, so the next starts from the sandbox as it was.
    const series = (prefix: string, profile: string): [string, string[]][] => [
      [`${prefix}check`, ['check', target, ...common, '--profile', profile, '--steal-seconds', '1']],
      [`${prefix}apply --dry-run`, ['apply', target, ...common, '--profile', profile, '--dry-run']],
      [`${prefix}apply`, ['apply', target, ...common, '--profile', profile]],
      [`${prefix}rollback --dry-run`, ['rollback', target, ...common, '--dry-run']],
      [`${prefix}rollback`, ['rollback', target, ...common]],
    ];
    const runs = [...series('', join(dir, 'profile.yaml')), ...series('k8s-worker part: ', join(dir, 'k8s-worker-part.yaml'))];
    for (const [command, args] of runs) {
      const before = (sshd.log().match(SESSION) ?? []).length;
      const logFrom = sshd.log().length;
      const started = Date.now();
      // Asynchronously: sshd's log is read by this process's event loop, and at DEBUG1 a blocked loop
      // would let its stderr pipe fill until sshd itself stalls mid-run.
      const r = await runCli(args);
      const ms = Date.now() - started;
      // sshd logs a channel as it opens; the CLI has exited (its connection closed), so all are in.
      await new Promise((res) => setTimeout(res, 300));
      const sessions = (sshd.log().match(SESSION) ?? []).length - before;
      const failed = r.status !== 0 && !(command.endsWith('check') && r.status === 1);
      results.push({ command, exit: r.status, sessions, ms, output: `${r.stdout}${r.stderr}`, sshdLog: failed ? sshd.log().slice(logFrom) : '' });
    }
  } finally {
    await sshd.stop();
  }
  process.stdout.write(JSON.stringify(results) + '\n');
}

// Run as a program only (the test imports its profiles and types: importing must not mount anything).
if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
