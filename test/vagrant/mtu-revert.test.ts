// End to end, the auto-revert of a session-cutting change on a real Debian 12 VM, through the CLI.
//
// THE PATH IS SIMULATED. Under QEMU's user-mode network no guest MTU breaks SSH by itself (QEMU
// terminates TCP), so the guest is made to sit behind what a real VPS provider network can be: a path
// that carries IP packets of 1400 bytes and silently drops 1500-byte ones, with no ICMP "fragmentation
// needed" (test/helpers/vm-netem.ts: a tbf size limit on eth0's egress; eth0 starts at MTU 1400,
// where everything works). A profile asking MTU 1500 then does what it does on such a network: small
// packets still pass, every full-size one from the node is lost, and SSH hangs at the key exchange
// (the classic MTU black-hole symptom) or, once connected, on any bulk transfer.
//
// What is checked: `apply` arms the revert, sets 1500, cannot prove the path on a fresh connection
// (confirmPath moves 256 KiB both ways), so the node puts 1400 back by itself when the confirm
// window ends; prep-node exits 6 with one line, the persistent form was never written, nothing of
// the revert is left. A prep-node killed inside the window: the node reverts alone and the next run
// reports it. The positive control in the same boot: the path carries 1500 again, the same apply
// exits 0, the MTU is 1500 and persisted (ifupdown pre-up line); rollback puts everything back.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, bootVm, clientConfig, runCli, type Backend, type Ran, type Vm } from '../helpers/vm.js';
import { sshVm, sshVmOk } from '../helpers/vm-reboot.js';
import { blackHoleAbove, blackHoleDrops, clearBlackHole } from '../helpers/vm-netem.js';
import { JOURNAL_FILE, REVERTED_FILE, STATE_DIR, parseJournal, type Journal } from '../../src/tuners/journal.js';

// The same guest under both backends adds little here and doubles minutes of TCG time in CI's 90-minute
// budget: check (e2e.test.ts) runs on both; this file on QEMU unless PREP_NODE_VM_BACKENDS names more.
const backends = (process.env.PREP_NODE_VM_BACKENDS ?? 'qemu').split(',') as Backend[];

const PATH_MTU = 1400;
const WANTED_MTU = 1500;
const WINDOW = 30;
const PROFILE_NAME = 'mtu-revert-test';
// Only the MTU: no sysctls, no modules, channels left alone (bpffs is already mounted by systemd).
const PROFILE = `name: ${PROFILE_NAME}
description: the MTU alone, for the auto-revert test
kernel:
  min: "5.10"
  recommended: "5.15"
mtu:
  primary: ${WANTED_MTU}
  private: ${WANTED_MTU}
  apply: true
channels: keep
bpffs: true
sysctl: {}
modules: []
`;

/** path → `type mode uid:gid [-> target] [sha256]` for everything under the roots. */
function snapshot(vm: Vm, roots: string[]): Map<string, string> {
  const out = sshVmOk(
    vm,
    `for r in ${roots.join(' ')}; do [ -e "$r" ] || continue; find "$r" -xdev -printf '%p\\t%y %m %U:%G %l\\n'; ` +
      `find "$r" -xdev -type f -exec sha256sum {} + | sed 's/^\\([0-9a-f]*\\)  \\(.*\\)$/\\2\\thash \\1/'; done`,
  );
  const m = new Map<string, string>();
  for (const line of out.split('\n').filter(Boolean)) {
    const [path, meta] = line.split('\t') as [string, string];
    m.set(path, `${m.get(path) ?? ''} ${meta.trimEnd()}`.trim());
  }
  return m;
}

/** Paths whose entry differs between two snapshots. */
function changed(a: Map<string, string>, b: Map<string, string>): string[] {
  return [...new Set([...a.keys(), ...b.keys()])].filter((p) => a.get(p) !== b.get(p)).sort();
}

function ran(r: Ran): string {
  return `exit ${r.status}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;
}

function esc(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const backend of backends) {
  describe(`auto-revert of an MTU change on a path that black-holes big packets (${backend})`, { timeout: 1_500_000 }, () => {
    let vm: Vm;
    let dir: string;
    let config: string;
    let profileFile: string;
    let etc0: Map<string, string>;
    let interfaces0: string;
    let killedRun = '';
    const timings: [string, number][] = [];

    const target = () => vm.spec(vm.target.sudoUser);
    const cli = (label: string, args: string[]): Ran => {
      const t0 = Date.now();
      const r = runCli(vm, [args[0]!, '-F', config, ...args.slice(1)]);
      timings.push([label, Date.now() - t0]);
      return r;
    };
    const apply = (label: string, ...extra: string[]) => cli(label, ['apply', '--profile', profileFile, '--confirm-timeout', String(WINDOW), ...extra, target()]);
    /** eth0's MTU, read over a fresh SSH connection (small packets: works whatever the path). */
    const mtu = (timeoutMs = 60_000) => {
      const r = sshVm(vm, 'cat /sys/class/net/eth0/mtu', { timeoutMs, connectTimeout: 10 });
      return r.status === 0 ? Number(r.stdout.trim()) : null;
    };
    const journal = (): Journal | null => {
      const r = sshVm(vm, `cat ${JOURNAL_FILE}`);
      return r.status === 0 ? parseJournal(r.stdout, 'vm') : null;
    };
    /** Nothing of an auto-revert is left: no timer or service unit, no script, lock or pid file. */
    const assertNoRevertLeft = (when: string) => {
      const units = sshVmOk(vm, "systemctl list-units --all --no-legend --plain 'prep-node-revert*'; systemctl list-timers --all --no-legend 'prep-node-revert*'").trim();
      assert.equal(units, '', `${when}: revert units left`);
      const files = sshVmOk(vm, `ls -d ${STATE_DIR}/revert-* 2>/dev/null; true`).trim();
      assert.equal(files, '', `${when}: revert files left`);
    };
    /** When the guest's systemd started the revert's timer and service (guest clock, seconds), from its journal. */
    const revertTimes = (unit: string) => {
      const lines = sshVmOk(vm, `journalctl -o short-unix --no-pager _PID=1 | grep -F 'Started ${unit}.' || true`);
      const at = (suffix: string) => Number(new RegExp(`^(\\d+\\.\\d+) .*Started ${esc(unit)}\\.${suffix}\\b`, 'm').exec(lines)?.[1] ?? NaN);
      return { armed: at('timer'), fired: at('service') };
    };
    /** Guest clock minus host clock, in seconds (± half an SSH round trip). */
    const clockOffset = () => {
      const t0 = Date.now();
      const guest = Number(sshVmOk(vm, 'date +%s.%N'));
      return guest - (t0 + Date.now()) / 2000;
    };

    before(async () => {
      const t0 = Date.now();
      vm = await bootVm(backend);
      timings.push(['boot', Date.now() - t0]);
      dir = mkdtempSync(join(tmpdir(), 'prep-node-mtu-revert-'));
      config = clientConfig(dir, vm, vm.target.knownHosts);
      profileFile = join(dir, `${PROFILE_NAME}.yaml`);
      writeFileSync(profileFile, PROFILE);
      // The node as the provider would hand it over: MTU 1400 on a path of 1400.
      sshVmOk(vm, `ip link set dev eth0 mtu ${PATH_MTU}`);
      blackHoleAbove(vm, PATH_MTU, WANTED_MTU);
      etc0 = snapshot(vm, ['/etc', STATE_DIR]);
      interfaces0 = sshVmOk(vm, 'cat /etc/network/interfaces');
    });
    after(async () => {
      try {
        await vm?.down();
      } finally {
        if (dir) rmSync(dir, { recursive: true, force: true });
        process.stderr.write(`mtu-revert.test timings (${backend}, confirm window ${WINDOW} s): ${timings.map(([l, ms]) => `${l} ${(ms / 1000).toFixed(1)}s`).join(', ')}\n`);
      }
    });

    test('the simulated path: MTU 1400, big packets dropped above it, and 256 KiB both ways work at 1400', () => {
      assert.equal(mtu(), PATH_MTU);
      assert.match(sshVmOk(vm, 'tc qdisc show dev eth0 root'), / tbf .*burst 14[56]\db/);
      assert.ok(!etc0.has(STATE_DIR), 'prep-node has never been here');
      const down = sshVm(vm, "head -c 262144 /dev/zero | tr '\\0' x", { timeoutMs: 60_000 });
      assert.equal(down.stdout.length, 262144, `node → client at MTU 1400: ${down.status} ${down.stderr}`);
      const up = sshVm(vm, 'wc -c', { input: 'y'.repeat(262144), timeoutMs: 60_000 });
      assert.equal(up.stdout.trim(), '262144', `client → node at MTU 1400: ${up.status} ${up.stderr}`);
      assert.equal(blackHoleDrops(vm), 0, 'nothing of MTU 1400 is dropped');
    });

    test('apply MTU 1500 through the black hole: exit 6 in one line, the node reverted to 1400 by itself, nothing persisted', (t) => {
      const offset = clockOffset();
      const started = Date.now();
      const r = apply('apply (black hole, exit 6)');
      const ended = Date.now();
      assert.equal(r.status, 6, ran(r));
      assert.equal(r.stdout, '', ran(r));
      assert.equal(r.stderr.trim().split('\n').length, 1, ran(r));
      assert.match(
        r.stderr,
        new RegExp(`^prep-node: ${esc(target())}: mtu eth0 ${WANTED_MTU} cut the SSH session: no fresh connection could move 256 KiB both ways within ${WINDOW} s, so the node reverted it; nothing after mtu was applied\\.`),
      );
      assert.doesNotMatch(r.stderr, /no marker found/, 'prep-node found the revert marker after the window');

      // The node is back on the value the path carries, read over a fresh connection.
      assert.equal(mtu(), PATH_MTU);
      const drops = blackHoleDrops(vm);
      assert.ok(drops !== null && drops > 0, `the simulated path dropped the full-size packets (dropped ${drops})`);

      // The persistent form is written only after a confirmation: /etc/network is byte for byte as before.
      assert.equal(sshVmOk(vm, 'cat /etc/network/interfaces'), interfaces0);
      const etcChanged = changed(etc0, snapshot(vm, ['/etc'])).filter((p) => p.startsWith('/etc'));
      assert.deepEqual(etcChanged, [], `nothing may be new under /etc (a profile without sysctls owns no sysctl.d file): ${etcChanged.join(', ')}`);

      // The revert ran and cleaned up after itself; prep-node took (and reported) its marker.
      assertNoRevertLeft('after the revert');
      assert.equal(sshVm(vm, `test -e ${REVERTED_FILE}`).status, 1, 'the exit-6 run took the marker: it reported the revert itself');
      const j = journal();
      assert.ok(j, 'the journal is kept');
      assert.equal(j.run.state, 'applying', 'the run stopped at mtu: the next run finishes (or rolls back) it');
      assert.deepEqual(j.values, [{ tuner: 'mtu', key: 'eth0', value: String(PATH_MTU) }]);
      assert.ok(!j.files.some((f) => f.path.startsWith('/etc/network') || f.path.includes('mtu')), JSON.stringify(j.files));

      // When the node's timer fired, against the window (guest clock for both).
      const unit = `prep-node-revert-${j.run.id}-mtu`;
      const { armed, fired } = revertTimes(unit);
      assert.ok(Number.isFinite(armed) && Number.isFinite(fired), `${unit}: timer and service in the guest's journal`);
      assert.ok(fired - armed >= WINDOW - 0.5, `the revert waited for the window: fired ${(fired - armed).toFixed(1)} s after arming`);
      // prep-node's fresh connections inside the window got through the key exchange and logged in
      // (small packets): only the 256 KiB confirm transfer could tell that the path was broken.
      const logins = sshVmOk(vm, `journalctl -o short-unix --no-pager --since=@${Math.floor(armed)} --until=@${Math.ceil(fired)} | grep -c 'Accepted publickey for ${vm.target.sudoUser} ' || true`);
      const rel = (guest: number) => ((guest - offset) * 1000 - started) / 1000;
      t.diagnostic(
        `apply took ${((ended - started) / 1000).toFixed(1)} s: revert armed at +${rel(armed).toFixed(1)} s, ` +
          `fired at +${rel(fired).toFixed(1)} s (${(fired - armed).toFixed(1)} s after arming, window ${WINDOW} s), ` +
          `prep-node exited ${((ended - started) / 1000 - rel(fired)).toFixed(1)} s after the revert; ${drops} packets dropped; ` +
          `${Number(logins)} fresh logins inside the window`,
      );
      assert.ok(Number(logins) >= 1, 'a fresh connection logged in inside the window: the plain `ssh true` test would have confirmed the broken path');
    });

    test('prep-node killed inside the window: the node reverts alone, and the next run reports it', async (t) => {
      const [cmd, ...args] = vm.wrap([process.execPath, CLI, 'apply', '-F', config, '--profile', profileFile, '--confirm-timeout', String(WINDOW), target()]);
      const t0 = Date.now();
      const child = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
      let out = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      child.stderr.on('data', (b: Buffer) => (out += b.toString()));
      let done = false;
      const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
      void exited.then(() => (done = true));
      // The MTU change is in once a fresh connection can no longer read it (the key exchange hangs
      // in the black hole), or reads 1500; the revert was armed before it.
      let killedAt = '';
      try {
        while (!done && Date.now() - t0 < 150_000) {
          const m = mtu(8000);
          if (m === null || m === WANTED_MTU) {
            child.kill('SIGKILL');
            killedAt = `${((Date.now() - t0) / 1000).toFixed(1)} s in (${m === null ? 'a fresh SSH connection hung' : `MTU read ${m}`})`;
            break;
          }
          await sleep(500);
        }
      } finally {
        if (!done) child.kill('SIGKILL');
      }
      const code = await exited;
      assert.ok(killedAt, `prep-node finished (exit ${code}) before the MTU changed:\n${out}`);
      t.diagnostic(`killed ${killedAt}`);

      // Nobody is left to confirm: the node reverts when the window ends.
      let back: number | null = null;
      while (Date.now() - t0 < 240_000 && back !== PATH_MTU) {
        back = mtu(10_000);
        if (back !== PATH_MTU) await sleep(2000);
      }
      timings.push(['apply killed → node reverted', Date.now() - t0]);
      assert.equal(back, PATH_MTU, 'the node reverted to the MTU the path carries');
      const j = journal();
      assert.ok(j);
      killedRun = j.run.id;
      const marker = sshVmOk(vm, `cat ${REVERTED_FILE}`).trim();
      assert.match(marker, new RegExp(`^${esc(killedRun)}-mtu \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ mtu eth0 ${WANTED_MTU}$`));
      assertNoRevertLeft('after the unattended revert');
      assert.equal(sshVmOk(vm, 'cat /etc/network/interfaces'), interfaces0);

      // A dry run only plans: it shows the change again and leaves the marker for a real run.
      const dry = apply('apply --dry-run', '--dry-run');
      assert.equal(dry.status, 0, ran(dry));
      assert.match(dry.stdout, new RegExp(`^ {2}mtu +eth0 +${PATH_MTU} → ${WANTED_MTU} +persist: ifupdown \\(/etc/network/interfaces\\)$`, 'm'));
      assert.equal(sshVmOk(vm, `cat ${REVERTED_FILE}`).trim(), marker, 'the dry run left the marker');
    });

    test('positive control: the path carries 1500 again, apply exits 0, reports the revert, persists the MTU', () => {
      clearBlackHole(vm);
      const r = apply('apply (clean path, exit 0)');
      assert.equal(r.status, 0, ran(r));
      assert.match(
        r.stdout,
        new RegExp(`^ {2}! the node reverted mtu eth0 ${WANTED_MTU} at \\S+Z \\(run ${esc(killedRun)}-mtu\\): prep-node could not reconnect after the change$`, 'm'),
      );
      assert.match(r.stdout, new RegExp(`^ {2}! run ${esc(killedRun)} \\(profile ${PROFILE_NAME}, started [^)]+\\) did not finish: finishing it now$`, 'm'));
      assert.match(r.stdout, new RegExp(`^ {2}mtu +eth0 +${PATH_MTU} → ${WANTED_MTU} +persist: ifupdown \\(/etc/network/interfaces\\)$`, 'm'));
      assert.match(r.stdout, /applied and verified/);
      assert.equal(mtu(), WANTED_MTU);
      // ifupdown's `mtu` option does nothing for `inet dhcp`: a pre-up line in eth0's stanza, the rest byte for byte.
      const expected = interfaces0.replace(/^(iface eth0 inet dhcp)$/m, `$1\n    pre-up ip link set dev eth0 mtu ${WANTED_MTU}`);
      assert.notEqual(expected, interfaces0);
      assert.equal(sshVmOk(vm, 'cat /etc/network/interfaces'), expected);
      assertNoRevertLeft('after a confirmed apply');
      assert.equal(sshVm(vm, `test -e ${REVERTED_FILE}`).status, 1, 'the marker was reported and removed');
      assert.equal(journal()?.run.state, 'applied');
      const again = apply('apply (again)');
      assert.equal(again.status, 0, ran(again));
      assert.match(again.stdout, new RegExp(`: profile ${PROFILE_NAME}: nothing to change\\n`));
    });

    test('rollback: the MTU, /etc and /var/lib/prep-node exactly as before', () => {
      const r = cli('rollback', ['rollback', target()]);
      assert.equal(r.status, 0, ran(r));
      assert.match(r.stdout, /verified: every file is byte for byte as before/);
      assert.equal(mtu(), PATH_MTU, 'the MTU from before prep-node first came');
      assert.equal(sshVmOk(vm, 'cat /etc/network/interfaces'), interfaces0);
      assert.deepEqual(changed(etc0, snapshot(vm, ['/etc', STATE_DIR])), []);
      assertNoRevertLeft('after rollback');
    });
  });
}
