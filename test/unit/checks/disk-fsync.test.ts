import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diskFsync, judgeFsync, measureCommand, parseFio, parseProbe, parseSamples, percentile, probeCommand } from '../../../src/checks/disk-fsync.js';
import type { RunOptions } from '../../../src/host/host.js';
import { loadProfile } from '../../../src/profiles/load.js';
import { fixtureContext, type Answer } from '../../helpers/fixture-host.js';
import { fixture } from '../../helpers/fixtures.js';

const cp = await loadProfile('k8s-control-plane');
const CP_YAML = 'name: cp\ndescription: d\nrole: control-plane\nkernel: {min: "5.10", recommended: "5.15"}\netcd: {dataDir: /var/lib/etcd, fsyncP99Ms: 10}\n';

/** A control-plane context whose host also records the options each command ran with. */
async function cpContext(answers: Record<string, Answer>) {
  const ctx = await fixtureContext(answers, CP_YAML);
  const options: RunOptions[] = [];
  const run = ctx.host.run.bind(ctx.host);
  ctx.host.run = (command, opts = {}) => {
    options.push(opts);
    return run(command, opts);
  };
  return { ctx, options };
}

test('nearest-rank percentile', () => {
  const values = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(values, 99), 99);
  assert.equal(percentile(values, 50), 50);
  assert.equal(percentile([5], 99), 5);
});

test('a worker profile skips: no etcd', async () => {
  const ctx = await fixtureContext({});
  const f = await diskFsync.run(ctx);
  assert.equal(f.status, 'skip');
  assert.equal(f.detail, 'worker profile: no etcd');
  assert.deepEqual(ctx.host.commands, []);
});

test('probe: recorded local has fio, python3 and GNU date; the VM only date; RHEL 8 platform-python; not writable means sudo', () => {
  const local = parseProbe(fixture('hosts/local-6.18/fsync-probe.out'));
  assert.deepEqual(local.methods, ['fio', 'python', 'dd']);
  assert.deepEqual([local.dir, local.writable, local.device, local.fsType], ['/var/lib', true, '/dev/vda', 'ext2/ext3']);
  assert.deepEqual(parseProbe(fixture('hosts/debian-12/fsync-probe.out')).methods, ['dd']);
  const rhel = parseProbe(fixture('hosts/rhel-8/fsync-probe.out'));
  assert.deepEqual([rhel.methods, rhel.python, rhel.fsType], [['python', 'dd'], '/usr/libexec/platform-python', 'xfs']);
  assert.equal(parseProbe(fixture('hosts/ubuntu-24.04/fsync-probe.out')).writable, false);
  assert.deepEqual(parseProbe('@@ dir\n/\n@@ writable\nyes\n@@ fs\next2/ext3\n/dev/sda1 1 1 1 1% /\n@@ tools\nfio=\npython=\ndate-ns=%N\n').methods, []);
});

test('fio JSON, recorded (fio 3.33 on this machine): the sync 99th percentile, a true p99', () => {
  const m = parseFio(fixture('hosts/local-6.18/fio.json'));
  assert.deepEqual([m.method, m.exact, m.samples], ['fio', true, 10029]);
  assert.equal(m.p99Ms, 4.42368);
  assert.match(m.how, /^fio-3\.33/);
});

test('fio JSON after a warning line, and a fio that reports no sync percentiles', () => {
  const noisy = 'note: both iodepth >= 1 and synchronous I/O engine are selected, queue depth will be capped at 1\n' + fixture('hosts/ubuntu-24.04/fio.json');
  assert.equal(parseFio(noisy).p99Ms, 18.219008);
  assert.throws(() => parseFio('{"fio version": "fio-3.1", "jobs": [{"error": 0, "write": {}}]}'), /needs fio >= 3\.5/);
  assert.throws(() => parseFio('fio: failed to create file'), /printed no JSON/);
});

test('python3 samples, recorded on this machine: a true p99 below 10 ms -> pass', () => {
  const m = parseSamples(fixture('hosts/local-6.18/fsync-python.out'), 'python');
  assert.equal(m.exact, true);
  assert.equal(m.samples, 10029);
  const f = judgeFsync(m, 10, parseProbe(fixture('hosts/local-6.18/fsync-probe.out')));
  assert.equal(f.status, 'pass');
  assert.match(f.observed, /^p99 \d+\.\d\d ms over 10029 writes \(python3 timing each fdatasync\) at \/var\/lib on \/dev\/vda \(ext2\/ext3\)$/);
  assert.match(f.detail ?? '', /a true p99 \(python\)/);
});

test('dd samples, recorded on the TCG VM: an estimate, said so, judged with the loop jitter in mind', () => {
  const m = parseSamples(fixture('hosts/debian-12/fsync-dd.out'), 'dd');
  assert.equal(m.exact, false);
  assert.ok(m.samples > 0 && m.samples < 100);
  assert.ok((m.lowMs ?? 0) <= m.p99Ms);
  const f = judgeFsync(m, 10, parseProbe(fixture('hosts/debian-12/fsync-probe.out')));
  assert.match(f.observed, /^p99 ≈ \d+\.\d\d ms over \d+ writes \(estimate: dd write\+fdatasync timed by date\(1\), minus the loop's own \d+\.\d\d ms/);
  assert.match(f.observed, /only \d+ writes in 20 s/);
  assert.match(f.detail ?? '', /an estimate/);
  assert.notEqual(f.status, 'error');
});

test('judging an estimate: below the limit passes, a floor below it warns, a floor above it fails', () => {
  const probe = parseProbe(fixture('hosts/debian-12/fsync-probe.out'));
  const est = { method: 'dd' as const, samples: 1000, exact: false, how: 'estimate' };
  assert.equal(judgeFsync({ ...est, p99Ms: 4, lowMs: 2 }, 10, probe).status, 'pass');
  const warn = judgeFsync({ ...est, p99Ms: 14, lowMs: 6 }, 10, probe);
  assert.equal(warn.status, 'warn');
  assert.match(warn.remedy ?? '', /^measure exactly: apt-get install -y fio/);
  const fail = judgeFsync({ ...est, p99Ms: 30, lowMs: 25 }, 10, probe);
  assert.equal(fail.status, 'fail');
  assert.match(fail.remedy ?? '', /faster disk.*fio --rw=write --ioengine=sync --fdatasync=1 --directory=\/var\/lib --size=22m --bs=2300/);
});

test('control plane with fio on a slow disk, dir owned by root for a sudo user: fio under sudo -> fail', async () => {
  const probe = fixture('hosts/ubuntu-24.04/fsync-probe.out');
  const { ctx, options } = await cpContext({
    [probeCommand('/var/lib/etcd')]: probe,
    [measureCommand('fio', '/var/lib', '/usr/bin/python3')]: fixture('hosts/ubuntu-24.04/fio.json'),
  });
  const f = await diskFsync.run(ctx);
  assert.equal(f.status, 'fail');
  assert.equal(f.observed, "p99 18.22 ms over 2301 writes (fio-3.36, etcd's recipe) at /var/lib on /dev/root (ext2/ext3)");
  assert.equal(f.expected, 'fdatasync p99 < 10 ms');
  assert.deepEqual(options.map((o) => o.sudo ?? false), [false, true], 'probe as the user, measure as root');
  assert.ok((options[1]?.timeoutMs ?? 0) >= 40_000);
});

test('fio failing falls back to python3 and says so', async () => {
  const { ctx } = await cpContext({
    [probeCommand('/var/lib/etcd')]: fixture('hosts/local-6.18/fsync-probe.out'),
    [measureCommand('fio', '/var/lib', '/root/.pyenv/shims/python3')]: { code: 1, stderr: 'fio: pid=0, err=28/file:filesetup.c:240, func=write, error=No space left on device' },
    [measureCommand('python', '/var/lib', '/root/.pyenv/shims/python3')]: fixture('hosts/local-6.18/fsync-python.out'),
  });
  const f = await diskFsync.run(ctx);
  assert.equal(f.status, 'pass');
  assert.match(f.detail ?? '', /fell back: fio: exit 1: .*No space left on device/);
});

test('no way to time writes, and a measurement that times out, are errors', async () => {
  const none = '@@ dir\n/var/lib\n@@ writable\nyes\n@@ fs\next2/ext3\n/dev/vda1 1 1 1 1% /\n@@ tools\nfio=\npython=\ndate-ns=%N\n';
  const a = await cpContext({ [probeCommand('/var/lib/etcd')]: none });
  const f = await diskFsync.run(a.ctx);
  assert.equal(f.status, 'error');
  assert.match(f.remedy ?? '', /install -y fio/);
  const b = await cpContext({
    [probeCommand('/var/lib/etcd')]: fixture('hosts/debian-12/fsync-probe.out'),
    [measureCommand('dd', '/var/lib', '')]: { code: null, timedOut: true },
  });
  const g = await diskFsync.run(b.ctx);
  assert.equal(g.status, 'error');
  assert.match(g.detail ?? '', /dd took longer than 45 s/);
});

test('the measuring commands write in a temp dir beside the data and remove it on exit and on TERM', () => {
  for (const m of ['fio', 'python', 'dd'] as const) {
    const cmd = measureCommand(m, '/var/lib/etcd');
    assert.match(cmd, /^t=\$\(mktemp -d \/var\/lib\/etcd\/\.prep-node-fsync\.XXXXXX\) \|\| exit 1; trap 'rm -rf -- "\$t"' EXIT; trap 'exit 143' HUP INT TERM; /, m);
  }
  assert.match(measureCommand('fio', '/var/lib'), /fio --rw=write --ioengine=sync --fdatasync=1 --directory="\$t" --size=22m --bs=2300 --name=prep-node-fsync --output-format=json --runtime=20$/);
  assert.equal(cp.etcd.fsyncP99Ms, 10);
});
