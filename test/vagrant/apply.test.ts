// End to end, apply and rollback on a real Debian 12 VM (its own 6.1 kernel), driven through the CLI
// as a user would: check (findings) → apply --dry-run (nothing changes) → refusals (nothing changes)
// → apply as a sudo user → check (the tuned items pass) → apply again (nothing to change) → reboot →
// check (still pass: modules-load.d and sysctl.d persist) → rollback (every file under /etc and
// /var/lib/prep-node as before, byte for byte, with mode and owner; running sysctls, modules and the
// bpffs mount as before) → rollback again (nothing) → a run killed half-way is finished by the next
// apply, and rolled back exactly. One boot for the whole file, plus the reboot.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, bootVm, clientConfig, runCli, type Backend, type Ran, type Vm } from '../helpers/vm.js';
import { rebootVm, sshVm, sshVmOk } from '../helpers/vm-reboot.js';
import type { CheckDocument } from '../../src/report/json.js';
import { loadProfile } from '../../src/profiles/load.js';
import { sysctlKeys } from '../../src/probes/sysctl.js';
import { JOURNAL_FILE, STATE_DIR, parseJournal, type Journal } from '../../src/tuners/journal.js';

// The same guest under both backends adds little here and doubles minutes of TCG time in CI's 90-minute
// budget: check (e2e.test.ts) runs on both; this file on QEMU unless PREP_NODE_VM_BACKENDS names more.
const backends = (process.env.PREP_NODE_VM_BACKENDS ?? 'qemu').split(',') as Backend[];
const PROFILE = 'k8s-worker';

// What the k8s-worker profile's tuners fix on a stock Debian 12 guest: each of these fails before
// apply and passes after it (and after a reboot). bpf.fs already passes (systemd 252 mounts bpffs).
// The rest are not the tuners' business and must be as they were: virt.kvm (TCG), net.multiqueue
// (one queue), time.sync (no time daemon in the image), disk.fsync (skipped for a worker)...
const TUNED = ['ipvs.modules', 'conntrack.capacity', 'sysctl.drift', 'kubelet.basics'];
const ALREADY = ['bpf.fs'];
// cpu.steal measures one second of a shared, emulated machine: not compared across runs.
const NOISY = ['cpu.steal'];

/** Everything prep-node may touch on the node, as one comparable map. */
interface Snapshot {
  /** path → `type mode uid:gid [sha256 | -> target]` for every entry under /etc and STATE_DIR. */
  files: Map<string, string>;
  /** sysctl → value (or `(absent)`), the profile's and the checks' keys. */
  sysctls: Map<string, string>;
  modules: string[];
  bpffs: string;
}

function snapshotScript(keys: string[]): string {
  const roots = `/etc ${STATE_DIR}`;
  return [
    `echo '@@ entries'; for r in ${roots}; do [ -e "$r" ] && find "$r" -xdev -printf '%p\\t%y %m %U:%G %l\\n'; done | sort`,
    `echo '@@ hashes'; for r in ${roots}; do [ -e "$r" ] && find "$r" -xdev -type f -exec sha256sum {} +; done | sort -k2`,
    `echo '@@ sysctls'; for k in ${keys.join(' ')}; do f=/proc/sys/$(echo "$k" | tr . /); if [ -e "$f" ]; then printf '%s\\t%s\\n' "$k" "$(cat "$f" | tr '\\t' ' ')"; else printf '%s\\t(absent)\\n' "$k"; fi; done`,
    `echo '@@ modules'; cut -d' ' -f1 /proc/modules | sort`,
    `echo '@@ bpffs'; grep ' /sys/fs/bpf ' /proc/mounts || echo '(not mounted)'`,
    'true',
  ].join('\n');
}

function sections(out: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  let cur: string[] | undefined;
  for (const line of out.split('\n')) {
    const h = /^@@ (\S+)$/.exec(line);
    if (h) m.set(h[1]!, (cur = []));
    else if (line !== '') cur?.push(line);
  }
  return m;
}

function takeSnapshot(vm: Vm, keys: string[]): Snapshot {
  const s = sections(sshVmOk(vm, 'sh -s', { input: snapshotScript(keys) }));
  const hash = new Map<string, string>();
  for (const l of s.get('hashes') ?? []) {
    const m = /^([0-9a-f]{64}) {2}(.*)$/.exec(l);
    if (m) hash.set(m[2]!, m[1]!);
  }
  const files = new Map<string, string>();
  for (const l of s.get('entries') ?? []) {
    const [path, meta] = l.split('\t') as [string, string];
    files.set(path, `${meta.trimEnd()}${hash.has(path) ? ` ${hash.get(path)}` : ''}`);
  }
  const sysctls = new Map((s.get('sysctls') ?? []).map((l) => l.split('\t') as [string, string]));
  return { files, sysctls, modules: s.get('modules') ?? [], bpffs: (s.get('bpffs') ?? []).join('\n') };
}

/** Lines naming every difference between two snapshots (empty: equal). */
function diff(a: Snapshot, b: Snapshot): string[] {
  const out: string[] = [];
  for (const p of new Set([...a.files.keys(), ...b.files.keys()])) {
    if (a.files.get(p) !== b.files.get(p)) out.push(`${p}: ${a.files.get(p) ?? '(absent)'} → ${b.files.get(p) ?? '(absent)'}`);
  }
  for (const k of new Set([...a.sysctls.keys(), ...b.sysctls.keys()])) {
    if (a.sysctls.get(k) !== b.sysctls.get(k)) out.push(`sysctl ${k}: ${a.sysctls.get(k)} → ${b.sysctls.get(k)}`);
  }
  const gone = a.modules.filter((m) => !b.modules.includes(m));
  const added = b.modules.filter((m) => !a.modules.includes(m));
  if (gone.length > 0 || added.length > 0) out.push(`modules: unloaded ${gone.join(' ') || '-'}; loaded ${added.join(' ') || '-'}`);
  if (a.bpffs !== b.bpffs) out.push(`bpffs: ${a.bpffs} → ${b.bpffs}`);
  return out;
}

function assertSame(a: Snapshot, b: Snapshot, what: string): void {
  const d = diff(a, b);
  assert.deepEqual(d, [], `${what}:\n  ${d.join('\n  ')}`);
}

function readJournalOnVm(vm: Vm): Journal | null {
  const r = sshVm(vm, `cat ${JOURNAL_FILE}`);
  if (r.status !== 0) return null;
  return parseJournal(r.stdout, 'vm');
}

function statuses(r: Ran): Map<string, string> {
  const doc = JSON.parse(r.stdout) as CheckDocument;
  return new Map(doc.hosts[0]!.checks.map((c) => [c.id, c.status]));
}

function ran(r: Ran): string {
  return `exit ${r.status}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;
}

for (const backend of backends) {
  describe(`apply and rollback on a Debian 12 VM (${backend})`, { timeout: 1_800_000 }, () => {
    let vm: Vm;
    let dir: string;
    let config: string;
    let keys: string[];
    let before0: Snapshot;
    let checkBefore: Map<string, string>;
    let applied: Snapshot;
    const timings: [string, number][] = [];

    /** Run the CLI and note how long it took. */
    const cli = (label: string, args: string[]): Ran => {
      const t0 = Date.now();
      const r = runCli(vm, [args[0]!, '-F', config, ...args.slice(1)]);
      timings.push([label, Date.now() - t0]);
      return r;
    };
    const target = () => vm.spec(vm.target.sudoUser);
    const check = (label: string) => {
      const r = cli(label, ['check', '--json', '--steal-seconds', '1', '--profile', PROFILE, target()]);
      assert.ok(r.status === 0 || r.status === 1, ran(r));
      return statuses(r);
    };
    const snap = (label: string) => {
      const t0 = Date.now();
      const s = takeSnapshot(vm, keys);
      timings.push([label, Date.now() - t0]);
      return s;
    };
    /** The tuned checks pass, bpf.fs still passes, and every other check is as it was before apply. */
    const assertTuned = (now: Map<string, string>, when: string) => {
      for (const id of [...TUNED, ...ALREADY]) assert.equal(now.get(id), 'pass', `${when}: ${id}`);
      for (const [id, st] of checkBefore) {
        if (!TUNED.includes(id) && !NOISY.includes(id)) assert.equal(now.get(id), st, `${when}: ${id} is not the tuners' business and stays ${st}`);
      }
    };

    before(async () => {
      const t0 = Date.now();
      vm = await bootVm(backend);
      timings.push(['boot', Date.now() - t0]);
      dir = mkdtempSync(join(tmpdir(), 'prep-node-apply-'));
      // The harness's known_hosts already holds the guest's fixed host keys.
      config = clientConfig(dir, vm, vm.target.knownHosts);
      const profile = await loadProfile(PROFILE);
      keys = sysctlKeys(profile);
      before0 = snap('snapshot');
    });
    after(async () => {
      try {
        await vm?.down();
      } finally {
        if (dir) rmSync(dir, { recursive: true, force: true });
        const total = timings.reduce((n, [, ms]) => n + ms, 0);
        process.stderr.write(`apply.test timings (${backend}): ${timings.map(([l, ms]) => `${l} ${(ms / 1000).toFixed(1)}s`).join(', ')}; total ${(total / 1000).toFixed(0)}s\n`);
      }
    });

    test('the stock guest: prep-node has never been here, and check reports the profile items as findings', () => {
      assert.equal(before0.files.has(STATE_DIR), false, `${STATE_DIR} exists before any apply`);
      assert.equal(before0.files.has('/etc/sysctl.d/90-prep-node.conf'), false);
      assert.equal(before0.files.has('/etc/modules-load.d/prep-node.conf'), false);
      assert.ok(before0.files.has('/etc/fstab'));
      checkBefore = check('check (before)');
      for (const id of TUNED) assert.equal(checkBefore.get(id), 'fail', `stock Debian 12: ${id}`);
      for (const id of ALREADY) assert.equal(checkBefore.get(id), 'pass', `stock Debian 12: ${id}`);
    });

    test('apply --dry-run prints the plan and changes nothing', () => {
      const r = cli('apply --dry-run', ['apply', '--profile', PROFILE, '--dry-run', target()]);
      assert.equal(r.status, 0, ran(r));
      assert.match(r.stdout, new RegExp(`^${target().replace(/[.]/g, '\\.')}: profile ${PROFILE}: \\d+ changes planned \\(dry run: nothing changed\\)$`, 'm'));
      assert.match(r.stdout, /^ {2}modules +ip_vs +not loaded → loaded +persist: \/etc\/modules-load\.d\/prep-node\.conf$/m);
      assert.match(r.stdout, /^ {2}sysctl +net\.ipv4\.ip_forward +0 → 1 +persist: \/etc\/sysctl\.d\/90-prep-node\.conf$/m);
      assert.match(r.stdout, /^ {2}sysctl +\/etc\/sysctl\.d\/90-prep-node\.conf +write file$/m);
      assert.doesNotMatch(r.stdout, /applied/);
      assertSame(before0, snap('snapshot'), 'the node after a dry run');
    });

    test('a profile the node cannot take is refused with exit 5 in one line, and nothing changes', () => {
      const badSysctl = join(dir, 'bad-sysctl.yaml');
      writeFileSync(badSysctl, `extends: ${PROFILE}\nname: bad-sysctl\ndescription: a sysctl this kernel lacks\nsysctl:\n  net.ipv4.no_such_knob: 1\n`);
      const r1 = cli('apply (unknown sysctl)', ['apply', '--profile', badSysctl, target()]);
      assert.equal(r1.status, 5, ran(r1));
      assert.equal(r1.stderr.trim().split('\n').length, 1, r1.stderr);
      assert.match(r1.stderr, /unknown sysctl on this kernel: net\.ipv4\.no_such_knob/);

      const badModule = join(dir, 'bad-module.yaml');
      writeFileSync(badModule, `extends: ${PROFILE}\nname: bad-module\ndescription: a module this kernel lacks\nmodules:\n  - ip_vs\n  - no_such_module\n`);
      const r2 = cli('apply (missing module)', ['apply', '--profile', badModule, target()]);
      assert.equal(r2.status, 5, ran(r2));
      assert.equal(r2.stderr.trim().split('\n').length, 1, r2.stderr);
      assert.match(r2.stderr, /lacks module no_such_module/);
      assertSame(before0, snap('snapshot'), 'the node after two refused applies');
    });

    test('apply as a sudo user: exit 0, applied and verified; the journal names what it touched', () => {
      const r = cli('apply', ['apply', '--profile', PROFILE, target()]);
      assert.equal(r.status, 0, ran(r));
      assert.match(r.stdout, /applied and verified; originals journaled in \/var\/lib\/prep-node\/journal\.json/);
      // nf_conntrack_max exists only once nf_conntrack is loaded: the report shows it was set too.
      assert.match(r.stdout, /sysctl +net\.netfilter\.nf_conntrack_max +\d+ → 262144/);
      const j = readJournalOnVm(vm);
      assert.ok(j, 'a journal after apply');
      assert.equal(j.run.state, 'applied');
      assert.equal(j.createdStateDir, true);
      assert.deepEqual(j.files.map((f) => f.path).sort(), ['/etc/modules-load.d/prep-node.conf', '/etc/sysctl.d/90-prep-node.conf']);
      // Every path the journal names is inside what the snapshots compare.
      for (const f of j.files) assert.ok(f.path.startsWith('/etc/') || f.path.startsWith(`${STATE_DIR}/`), f.path);
      for (const f of j.files) assert.equal(f.original.kind === 'absent', !before0.files.has(f.path), `${f.path}: journaled original matches the snapshot`);
      // Modules the load brought in are journaled too, dependencies before the modules that need them.
      const mods = j.values.filter((v) => v.tuner === 'modules').map((v) => v.key);
      for (const m of ['ip_vs', 'nf_conntrack', 'br_netfilter', 'bridge']) assert.ok(mods.includes(m), `${m} journaled: ${mods.join(' ')}`);
      assert.ok(mods.indexOf('nf_conntrack') < mods.indexOf('ip_vs') && mods.indexOf('bridge') < mods.indexOf('br_netfilter'), mods.join(' '));
      applied = snap('snapshot');
      const d = diff(before0, applied);
      // What changed is exactly: the two files, the state directory and its journal, sysctls, modules.
      const changedPaths = d.filter((l) => l.startsWith('/')).map((l) => l.slice(0, l.indexOf(':')));
      assert.deepEqual(changedPaths.sort(), ['/etc/modules-load.d/prep-node.conf', '/etc/sysctl.d/90-prep-node.conf', STATE_DIR, JOURNAL_FILE].sort(), d.join('\n'));
      assert.equal(applied.files.get(JOURNAL_FILE)?.split(' ').slice(0, 3).join(' '), 'f 600 0:0', 'the journal is root-only');
    });

    test('check after apply: the tuned items pass, the others are as before', () => {
      assertTuned(check('check (applied)'), 'after apply');
    });

    test('apply again: nothing to change, the journal and every file untouched', () => {
      const j0 = readJournalOnVm(vm);
      const r = cli('apply (again)', ['apply', '--profile', PROFILE, target()]);
      assert.equal(r.status, 0, ran(r));
      assert.match(r.stdout, new RegExp(`: profile ${PROFILE}: nothing to change\\n`));
      assert.doesNotMatch(r.stdout, /→/);
      assert.deepEqual(readJournalOnVm(vm), j0);
      assertSame(applied, snap('snapshot'), 'the node after a second apply');
    });

    test('after a reboot the tuned items still pass: modules-load.d and sysctl.d persist them', async (t) => {
      const r = await rebootVm(vm);
      timings.push(['reboot', r.ms]);
      t.diagnostic(`reboot took ${(r.ms / 1000).toFixed(0)} s`);
      assertTuned(check('check (rebooted)'), 'after a reboot');
      const now = snap('snapshot');
      for (const [k, v] of applied.sysctls) assert.equal(now.sysctls.get(k), v, `${k} after a reboot`);
      for (const m of ['ip_vs', 'ip_vs_rr', 'ip_vs_wrr', 'ip_vs_sh', 'nf_conntrack', 'br_netfilter']) assert.ok(now.modules.includes(m), `${m} loaded at boot`);
    });

    test('rollback --dry-run lists what it would restore and changes nothing', () => {
      const s0 = snap('snapshot');
      const r = cli('rollback --dry-run', ['rollback', '--dry-run', target()]);
      assert.equal(r.status, 0, ran(r));
      assert.match(r.stdout, new RegExp(`would roll back profile ${PROFILE}`));
      assert.match(r.stdout, /file {2}\/etc\/sysctl\.d\/90-prep-node\.conf {2}→ removed/);
      assertSame(s0, snap('snapshot'), 'the node after a rollback dry run');
    });

    test('rollback: exit 0, and the node is as before, byte for byte, running values included', () => {
      const r = cli('rollback', ['rollback', target()]);
      assert.equal(r.status, 0, ran(r));
      assert.match(r.stdout, /verified: every file is byte for byte as before/);
      assert.doesNotMatch(r.stdout, /warning:/, 'every module was unloaded again');
      assertSame(before0, snap('snapshot'), 'the node after rollback (files under /etc and /var/lib/prep-node, sysctls, modules, bpffs)');
    });

    test('rollback again: nothing to roll back', () => {
      const r = cli('rollback (again)', ['rollback', target()]);
      assert.equal(r.status, 0, ran(r));
      assert.match(r.stdout, /nothing to roll back/);
    });

    test('a run killed half-way is found and finished by the next apply, and rolled back exactly', async (t) => {
      // Kill prep-node (SIGKILL: no cleanup of its own) once the node has the journal and the modules
      // are loaded, that is inside the run, before the sysctls are all set.
      const [cmd, ...args] = vm.wrap([process.execPath, CLI, 'apply', '-F', config, '--profile', PROFILE, target()]);
      const t0 = Date.now();
      const child = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
      let out = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      child.stderr.on('data', (b: Buffer) => (out += b.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
      let killedAt = '';
      let done = false;
      void exited.then(() => (done = true));
      try {
        while (!done && Date.now() - t0 < 180_000) {
          const probe = sshVm(vm, `if [ -e ${JOURNAL_FILE} ] && grep -q '^ip_vs ' /proc/modules; then echo yes; cat /proc/sys/net/core/somaxconn; fi`);
          if (probe.stdout.startsWith('yes')) {
            killedAt = `${((Date.now() - t0) / 1000).toFixed(1)} s in, somaxconn ${probe.stdout.split('\n')[1]}`;
            child.kill('SIGKILL');
            break;
          }
          await new Promise((r) => setTimeout(r, 200));
        }
      } finally {
        if (!done) child.kill('SIGKILL');
      }
      const code = await exited;
      assert.ok(killedAt, `prep-node finished (exit ${code}) before it could be killed:\n${out}`);
      t.diagnostic(`killed ${killedAt}`);
      timings.push(['apply (killed)', Date.now() - t0]);
      const dead = readJournalOnVm(vm);
      assert.ok(dead, 'the dead run left its journal');
      assert.equal(dead.run.state, 'applying', 'the dead run left its journal in state applying');

      const r = cli('apply (finish)', ['apply', '--profile', PROFILE, target()]);
      assert.equal(r.status, 0, ran(r));
      assert.match(r.stdout, new RegExp(`! run ${dead.run.id} \\(profile ${PROFILE}, started [^)]+\\) did not finish: finishing it now`));
      assert.match(r.stdout, /applied and verified|nothing to change/);
      const j = readJournalOnVm(vm);
      assert.ok(j);
      assert.equal(j.run.state, 'applied');
      // The originals are the node's values from before the dead run, not half-applied ones
      // (nf_conntrack_max has none from before: it appeared when the dead run loaded nf_conntrack).
      const sysctls = j.values.filter((v) => v.tuner === 'sysctl' && v.key !== 'net.netfilter.nf_conntrack_max');
      assert.ok(sysctls.length >= 5, JSON.stringify(j.values));
      for (const v of sysctls) assert.equal(v.value.replace(/\t/g, ' '), before0.sysctls.get(v.key), `journaled original of ${v.key}`);
      assertTuned(check('check (finished)'), 'after the finished run');

      const rb = cli('rollback (after the dead run)', ['rollback', target()]);
      assert.equal(rb.status, 0, ran(rb));
      assert.match(rb.stdout, /verified: every file is byte for byte as before/);
      assertSame(before0, snap('snapshot'), 'the node after rolling back the finished run');
    });
  });
}
