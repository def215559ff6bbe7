// Plain ssh to the test VM as any of its users (for the test's own looks at the node, independent of
// prep-node's SSH code), and a guest reboot that waits until the guest is back. A reboot is told apart
// from a slow sshd by the kernel's boot_id: it must change. QEMU's user-net port forward and the
// libvirt network both survive a guest reboot, so the same target works afterwards.
import { spawnSync } from 'node:child_process';
import type { Vm } from './vm.js';

export interface SshResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** The ssh argv for `user` on the VM: its key, its known_hosts, strict host key checking, no agent, no prompts. */
export function sshArgv(vm: Vm, user: string, command: string, connectTimeout = 10): string[] {
  const t = vm.target;
  return vm.wrap([
    'ssh',
    '-i', t.identity,
    '-o', 'IdentitiesOnly=yes',
    '-o', 'IdentityAgent=none',
    '-o', `UserKnownHostsFile=${t.knownHosts}`,
    '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'StrictHostKeyChecking=yes',
    '-o', 'BatchMode=yes',
    '-o', `ConnectTimeout=${connectTimeout}`,
    '-o', 'ServerAliveInterval=5',
    '-o', 'ServerAliveCountMax=3',
    '-p', String(t.port),
    `${user}@${t.host}`,
    command,
  ]);
}

/** Run a shell command on the VM as `user` (root by default); a non-zero exit is returned, not thrown. */
export function sshVm(vm: Vm, command: string, options: { user?: string; input?: string; timeoutMs?: number; connectTimeout?: number } = {}): SshResult {
  const [cmd, ...args] = sshArgv(vm, options.user ?? vm.target.rootUser, command, options.connectTimeout);
  const r = spawnSync(cmd!, args, { encoding: 'utf8', input: options.input ?? '', timeout: options.timeoutMs ?? 120_000 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** Like sshVm, but a non-zero exit throws with the command's stderr. */
export function sshVmOk(vm: Vm, command: string, options: { user?: string; input?: string; timeoutMs?: number } = {}): string {
  const r = sshVm(vm, command, options);
  if (r.status !== 0) throw new Error(`ssh ${options.user ?? vm.target.rootUser}@vm ${JSON.stringify(command.slice(0, 80))}: exit ${r.status}: ${r.stderr.trim()}`);
  return r.stdout;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Rebooted {
  /** From the reboot command until SSH answered with a new boot_id. */
  ms: number;
  bootIdBefore: string;
  bootIdAfter: string;
}

/**
 * Reboot the guest (`systemctl reboot` as root) and wait until SSH answers again from the new boot.
 * Throws after `timeoutMs` (a TCG guest takes about 100 s on a busy 2-core machine).
 */
export async function rebootVm(vm: Vm, timeoutMs = 420_000): Promise<Rebooted> {
  const bootIdBefore = sshVmOk(vm, 'cat /proc/sys/kernel/random/boot_id').trim();
  const t0 = Date.now();
  // The session may be cut by the shutdown before ssh sees an exit status: 255 is fine here.
  const r = sshVm(vm, 'systemctl reboot', { timeoutMs: 60_000 });
  if (r.status !== 0 && r.status !== 255 && r.status !== null) throw new Error(`systemctl reboot: exit ${r.status}: ${r.stderr.trim()}`);
  while (Date.now() - t0 < timeoutMs) {
    await sleep(3000);
    const probe = sshVm(vm, 'cat /proc/sys/kernel/random/boot_id', { timeoutMs: 30_000, connectTimeout: 5 });
    const id = probe.stdout.trim();
    if (probe.status === 0 && id !== '' && id !== bootIdBefore) {
      // SSH answers before every unit has started: wait until systemd says the boot is done.
      const wait = sshVm(vm, 'systemctl is-system-running --wait >/dev/null 2>&1; true', { timeoutMs: 120_000 });
      if (wait.status !== 0) continue;
      return { ms: Date.now() - t0, bootIdBefore, bootIdAfter: id };
    }
  }
  throw new Error(`the VM did not come back from the reboot within ${timeoutMs / 1000} s`);
}
