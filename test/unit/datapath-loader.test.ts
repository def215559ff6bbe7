import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureLoader, installArgs, loader, loaderError, parseEvents } from '../../src/datapath/loader.js';
import { ExitCode, PrepNodeError } from '../../src/errors.js';
import { nearlyFull, parseCtTimeouts } from '../../src/commands/datapath.js';
import type { Host, RunOptions, RunResult, WriteOptions } from '../../src/host/host.js';

/** A host that answers run() from a function and keeps files written to it. */
class ScriptedHost implements Host {
  readonly name = 'node1';
  readonly user = 'root';
  readonly calls: { command: string; options: RunOptions }[] = [];
  readonly files = new Map<string, { data: Buffer; options: WriteOptions }>();
  constructor(private readonly answer: (command: string, options: RunOptions, host: ScriptedHost) => Partial<RunResult>) {}
  run(command: string, options: RunOptions = {}): Promise<RunResult> {
    this.calls.push({ command, options });
    const r = this.answer(command, options, this);
    return Promise.resolve({ stdout: r.stdout ?? '', stderr: r.stderr ?? '', code: r.code === undefined ? 0 : r.code, timedOut: r.timedOut ?? false });
  }
  async exec(command: string, options?: RunOptions): Promise<string> {
    return (await this.run(command, options)).stdout;
  }
  readFile(): Promise<string> {
    return Promise.reject(new Error('not used'));
  }
  writeFile(path: string, data: string | Buffer, options: WriteOptions = {}): Promise<void> {
    this.files.set(path, { data: Buffer.from(data), options });
    return Promise.resolve();
  }
  upload(): Promise<void> {
    return Promise.reject(new Error('not used'));
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

const dir = mkdtempSync(join(tmpdir(), 'pn-dp-'));
const LOADER = join(dir, 'prep-node-dp');
writeFileSync(LOADER, 'a loader binary');
const SHA = createHash('sha256').update('a loader binary').digest('hex');
writeFileSync(`${LOADER}.sha256`, `${SHA}  prep-node-dp\n`);
const REMOTE = `/var/lib/prep-node/bin/prep-node-dp-${SHA.slice(0, 12)}`;

/** sha256sum (after the loader directory's ownership check, which passes here: test/kernel/dp-loader-dir.test.ts runs it for real) answers from the files the host holds. */
function sha256sum(command: string, host: ScriptedHost): Partial<RunResult> | undefined {
  const m = /; sha256sum (\S+) 2>\/dev\/null$/.exec(command);
  if (!m) return undefined;
  const f = host.files.get(m[1]!);
  return f ? { stdout: `${createHash('sha256').update(f.data).digest('hex')}  ${m[1]}\n` } : { code: 1 };
}

test('the loader is uploaded once, as root, mode 0755, to a path named by its sha256', async () => {
  const host = new ScriptedHost((c, _o, h) => sha256sum(c, h) ?? { stdout: '' });
  assert.equal(await ensureLoader(host, LOADER), REMOTE);
  assert.equal(host.files.get(REMOTE)?.options.mode, 0o755);
  assert.equal(host.files.get(REMOTE)?.options.sudo, true);
  assert.ok(host.calls.every((c) => c.options.sudo === true));
  const n = host.calls.length;
  assert.equal(await ensureLoader(host, LOADER), REMOTE);
  assert.equal(host.calls.length, n, 'a second call on the same host asks nothing');
});

test('a node that has this loader version gets nothing uploaded', async () => {
  const host = new ScriptedHost((c) => (c.includes('; sha256sum ') ? { stdout: `${SHA}  ${REMOTE}\n` } : { code: 99 }));
  assert.equal(await ensureLoader(host, LOADER), REMOTE);
  assert.equal(host.files.size, 0);
});

test('an upload that does not verify is an internal error', async () => {
  const host = new ScriptedHost((c) => (c.includes('; sha256sum ') ? { stdout: 'deadbeef  x\n' } : {}));
  await assert.rejects(ensureLoader(host, LOADER), (e: unknown) => e instanceof PrepNodeError && e.exitCode === ExitCode.internal && /does not match its sha256/.test(e.message));
});

test('a missing local loader says how to build it', async () => {
  const host = new ScriptedHost(() => ({}));
  await assert.rejects(ensureLoader(host, join(dir, 'nope')), /is missing: build it with `make -C bpf`/);
});

test('a loader that does not match the sha256 recorded at build time is refused before anything is sent', async () => {
  const d = mkdtempSync(join(tmpdir(), 'pn-dp-sum-'));
  const changed = join(d, 'prep-node-dp');
  writeFileSync(changed, 'a loader binary, changed after the build');
  writeFileSync(`${changed}.sha256`, `${SHA}  prep-node-dp\n`);
  const host = new ScriptedHost(() => ({}));
  await assert.rejects(ensureLoader(host, changed), (e: unknown) => e instanceof PrepNodeError && e.exitCode === ExitCode.usage && /does not match the sha256 recorded at build time \(\w{12}\): not uploading it/.test(e.message));
  assert.equal(host.calls.length, 0, 'the node was not asked anything');
  assert.equal(host.files.size, 0);
  writeFileSync(`${changed}.sha256`, 'garbage\n');
  await assert.rejects(ensureLoader(host, changed), /expected "<sha256> {2}prep-node-dp"/);
  const bare = join(d, 'bare');
  writeFileSync(bare, 'a loader binary');
  await assert.rejects(ensureLoader(host, bare), (e: unknown) => e instanceof PrepNodeError && e.exitCode === ExitCode.usage && /checksum .*bare\.sha256 is missing/.test(e.message));
  assert.equal(host.files.size, 0);
});

/** A host with the loader in place, answering loader commands from a table. */
function loaderHost(answers: Record<string, Partial<RunResult>>): ScriptedHost {
  return new ScriptedHost((c, _o, h) => {
    const sum = sha256sum(c, h);
    if (sum) return sum;
    if (!c.startsWith(`${REMOTE} `)) return {};
    return answers[c.slice(REMOTE.length + 1)] ?? { code: 2, stdout: `{"error":"unexpected ${c}","code":"usage"}` };
  });
}

test('status is parsed; unknown fields pass through', async () => {
  const host = loaderHost({
    status: { stdout: '{"installed":true,"kernel":"6.1.0","programs":[{"name":"tc_lb","type":"sched_cls","attach":"tc ingress eth0","id":7,"attached":true}],"maps":[{"name":"services","type":"hash","max_entries":1048576,"entries":3,"memlock_bytes":100}],"drops":{"POLICY_DENY":2},"set_retval":false,"bpffs":true}\n' },
  });
  await ensureLoader(host, LOADER);
  const st = await loader.status(host);
  assert.equal(st.installed, true);
  assert.equal(st.drops.POLICY_DENY, 2);
  assert.equal(st.programs[0]!.name, 'tc_lb');
  assert.equal((st as Record<string, unknown>).bpffs, true);
});

test('apply sends the lines on stdin and returns the counts', async () => {
  const host = loaderHost({ apply: { stdout: '{"put":2,"deleted":1,"missing":0,"cleared":0}\n' } });
  await ensureLoader(host, LOADER);
  const r = await loader.apply(host, ['put endpoints 0a000001 0001000000000000', 'del endpoints 0a000002']);
  assert.deepEqual({ put: r.put, deleted: r.deleted, cleared: r.cleared }, { put: 2, deleted: 1, cleared: 0 });
  assert.equal(host.calls.at(-1)!.options.stdin, 'put endpoints 0a000001 0001000000000000\ndel endpoints 0a000002\n');
});

test('a loader error becomes one line with its code; exit 3-8 is the node refusing, 1-2 is ours', async () => {
  const host = loaderHost({ 'dump services': { code: 3, stdout: '{"error":"the datapath is not installed: run install first","code":"not-installed"}\n' } });
  await ensureLoader(host, LOADER);
  await assert.rejects(loader.dump(host, 'services'), (e: unknown) => e instanceof PrepNodeError && e.exitCode === ExitCode.refused && e.message === 'node1: prep-node-dp dump: the datapath is not installed: run install first [not-installed]');
  const bad = loaderError('node1', 'apply', { stdout: '{"error":"line 3: bad hex (nothing was written)","code":"bad-input","line":3}', stderr: '', code: 2, timedOut: false });
  assert.equal(bad.exitCode, ExitCode.internal);
  assert.equal(bad.message, 'node1: prep-node-dp apply: line 3: bad hex (nothing was written) [bad-input]');
  const crash = loaderError('node1', 'status', { stdout: '', stderr: 'Segmentation fault\n', code: 139, timedOut: false });
  assert.equal(crash.message, 'node1: prep-node-dp status failed: Segmentation fault');
});

test('output that is not the expected JSON is an internal error naming the field', async () => {
  const host = loaderHost({ status: { stdout: '{"installed":"yes"}' } });
  await ensureLoader(host, LOADER);
  await assert.rejects(loader.status(host), (e: unknown) => e instanceof PrepNodeError && e.exitCode === ExitCode.internal && /prep-node-dp status printed unexpected JSON: installed: /.test(e.message));
});

test('install arguments', () => {
  assert.deepEqual(installArgs({}), ['install']);
  assert.deepEqual(installArgs({ caps: { services: 1024, backends: 4096 }, tcDevs: ['eth0', 'eth1'], cgroup: '/sys/fs/cgroup', force: true }), [
    'install', '--cap', 'services=1024,backends=4096', '--tc-dev', 'eth0', '--tc-dev', 'eth1', '--cgroup', '/sys/fs/cgroup', '--force',
  ]);
});

test('conntrack lifetimes: --ct-timeout durations become seconds the loader takes; bad ones exit 2 with the fix', () => {
  const ct = parseCtTimeouts('tcp-established=1d, udp=30s,tcp-closing=2m,tcp-syn=90,other=1h');
  assert.deepEqual(ct, { 'tcp-established': 86400, udp: 30, 'tcp-closing': 120, 'tcp-syn': 90, other: 3600 });
  assert.deepEqual(installArgs({ ctTimeouts: { 'tcp-established': 86400, udp: 30 } }), ['install', '--ct-timeout', 'tcp-established=86400,udp=30']);
  assert.equal(parseCtTimeouts(undefined), undefined);
  for (const [bad, says] of [['tcp=5', /no timeout named "tcp" \(timeouts: tcp-syn, tcp-established/], ['udp', /expected name=duration/], ['udp=0', /out of range \(1s to 30d\)/], ['udp=31d', /out of range/], ['udp=5w', /expected name=duration/], ['udp=-1', /expected name=duration/]] as const) {
    assert.throws(() => parseCtTimeouts(bad), (e: unknown) => e instanceof PrepNodeError && e.exitCode === ExitCode.usage && says.test(e.message), bad);
  }
});

test('events: one JSON line per drop, then the lost count', () => {
  const out = '{"ts_ns":1,"reason":1,"reason_name":"POLICY_DENY","hook":"tc","saddr":"10.0.0.1"}\n{"ts_ns":2,"reason":2,"reason_name":"POLICY_DEFAULT_DENY","hook":"tc"}\n{"lost":0}\n';
  const r = parseEvents('node1', out);
  assert.equal(r.events.length, 2);
  assert.equal(r.events[0]!.reason_name, 'POLICY_DENY');
  assert.equal(r.lost, 0);
});

test('status warns when a flow-state map (conntrack, sock_revnat, ...) is 90 % full or more, not before, not for other maps', () => {
  const w = nearlyFull([
    { name: 'conntrack', entries: 59000, max_entries: 65536 },
    { name: 'sock_revnat', entries: 58981, max_entries: 65536 },
    { name: 'conntrack6', entries: 58983, max_entries: 65536 },
    { name: 'services', entries: 65536, max_entries: 65536 },
    { name: 'frags' },
  ]);
  assert.deepEqual(w, [
    'warning: conntrack is 90% full: new flows evict the least recently used ones; raise it with `datapath install --force --cap conntrack=131072`',
    'warning: conntrack6 is 90% full: new flows evict the least recently used ones; raise it with `datapath install --force --cap conntrack6=131072`',
  ]);
});

test('a dump of a map the install lacks (installed by an older prep-node) is refused with the reinstall, not exit 70', async () => {
  const old = new ScriptedHost((c) => (c.includes(' dump ') ? { code: 2, stdout: `{"error":"no map 'services6' in this install","code":"usage"}\n` } : {}));
  await assert.rejects(loader.dumpAll(old, ['services', 'services6'], REMOTE), (e: unknown) => e instanceof PrepNodeError && e.exitCode === ExitCode.refused && /no services6 map: .*datapath install --force/.test(e.message));
  // a map prep-node did not ask for stays the loader's own error
  await assert.rejects(loader.dumpAll(old, ['services'], REMOTE), (e: unknown) => e instanceof PrepNodeError && e.exitCode === ExitCode.internal);
});

test('a full sync (apply, no dump first) into an install without node_cfg6 is refused with the reinstall too; a bad line stays the loader\'s error', async () => {
  const old = new ScriptedHost((c) => (c.includes(' apply') ? { code: 2, stdout: `{"error":"line 2: no map 'node_cfg6' in this install (see \`prep-node-dp status\`) (nothing was written)","code":"bad-input","line":2}\n` } : {}));
  await assert.rejects(loader.apply(old, ['clear node_cfg', 'clear node_cfg6'], REMOTE), (e: unknown) => e instanceof PrepNodeError && e.exitCode === ExitCode.refused && /no node_cfg6 map: .*datapath install --force/.test(e.message));
  const bad = new ScriptedHost((c) => (c.includes(' apply') ? { code: 2, stdout: `{"error":"line 1: unknown verb 'zap' (put, del or clear) (nothing was written)","code":"bad-input","line":1}\n` } : {}));
  await assert.rejects(loader.apply(bad, ['zap node_cfg6'], REMOTE), (e: unknown) => e instanceof PrepNodeError && e.exitCode !== ExitCode.refused);
});
