// The agent's in-process map writer (koffi → libbpf.so.1) on real pinned maps: in a private mount
// namespace with its own bpffs, the datapath is installed by the loader, then a child process opens
// the pinned maps through libbpf, puts (hash maps as one batch update, LPM tries one by one),
// deletes and clears, and the loader's own `dump` must show exactly what the writer says it wrote.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const DP = fileURLToPath(new URL('../../../bpf/build/prep-node-dp', import.meta.url));
const WRITER = fileURLToPath(new URL('../../src/agent/map-writer.js', import.meta.url));
const ENC = fileURLToPath(new URL('../../src/datapath/encode.js', import.meta.url));
const notRoot = process.getuid?.() !== 0 ? 'needs root (bpffs, cgroups)' : false;

function cgroup2Root(): string {
  const line = readFileSync('/proc/mounts', 'utf8').split('\n').find((l) => l.split(' ')[2] === 'cgroup2');
  if (!line) throw new Error('no cgroup2 mount on this machine');
  return line.split(' ')[1]!;
}

// runs inside the namespace: prints one JSON line per step
const CHILD = `
import { openPinnedMaps } from ${JSON.stringify(WRITER)};
import * as enc from ${JSON.stringify(ENC)};
const w = openPinnedMaps();
const hex = (b) => b.toString('hex');
const out = (o) => console.log(JSON.stringify(o));
const svc = (i) => ({ op: 'put', map: 'services', keyHex: hex(enc.svcKey(0xc6120300 + i, 80, 6)), valueHex: hex(enc.serviceValue(100 + i, 1, 0, 0)) });
const ops = [...Array.from({ length: 50 }, (_, i) => svc(i)),
  { op: 'put', map: 'ipcache', keyHex: hex(enc.ipcacheKey(0xc6120000, 16)), valueHex: hex(enc.ipcacheValue(300)) },
  { op: 'put', map: 'ipcache', keyHex: hex(enc.ipcacheKey(0xc6120400, 24)), valueHex: hex(enc.ipcacheValue(301)) }];
out({ step: 'put', res: await w.batch(ops), calls: { ...w.calls } });
out({ step: 'caps', caps: w.capacities() });
const d = await w.dump(['services', 'ipcache']);
out({ step: 'dump', services: d.services.size, ipcache: d.ipcache.size, same: ops.every((o) => d[o.map].get(o.keyHex) === o.valueHex) });
out({ step: 'del', res: await w.batch([{ op: 'del', map: 'services', keyHex: ops[0].keyHex }, { op: 'del', map: 'services', keyHex: ops[0].keyHex }]) });
try { await w.batch([svc(60), { op: 'put', map: 'services', keyHex: 'ab', valueHex: ops[1].valueHex }]); out({ step: 'bad', thrown: false }); }
catch (e) { out({ step: 'bad', thrown: true, message: e.message, services: (await w.dump(['services'])).services.size }); }
out({ step: 'clear', res: await w.batch([{ op: 'clear', map: 'ipcache' }]), ipcache: (await w.dump(['ipcache'])).ipcache.size });
await w.close();
`;

test('agent map writer: batch put, delete, clear on real pinned maps; the loader dumps the same', { skip: notRoot }, () => {
  const cg = `${cgroup2Root()}/pn-agent-mw-${process.pid}`;
  mkdirSync(cg);
  const script = `set -u
mount --make-rprivate /
mount -t bpf bpf /sys/fs/bpf || exit 10
trap '${DP} remove >/dev/null 2>&1' EXIT
${DP} install --cgroup ${cg} >/dev/null || exit 11
${process.execPath} --input-type=module -e "$CHILD" || exit 12
echo "@@dump"
${DP} dump services | wc -l
`;
  try {
    const r = spawnSync('unshare', ['--mount', 'sh', '-c', script], { encoding: 'utf8', env: { ...process.env, CHILD }, timeout: 120_000 });
    assert.equal(r.status, 0, `exit ${r.status}\n${r.stdout}\n${r.stderr}`);
    const [json, dump] = r.stdout.split('@@dump\n');
    type Step = Record<string, unknown> & { step: string };
    const steps = new Map<string, Step>(json!.trim().split('\n').map((l) => {
      const o = JSON.parse(l) as Step;
      return [o.step, o];
    }));
    assert.deepEqual(steps.get('put')!.res, { put: 52, deleted: 0, cleared: 0 });
    // 50 services in one BPF_MAP_UPDATE_BATCH, the two LPM-trie entries one update each
    assert.deepEqual(steps.get('put')!.calls, { update: 2, updateBatch: 1, delete: 0, lookup: 0 });
    assert.ok(((steps.get('caps')!.caps as Record<string, number>).services ?? 0) > 0);
    assert.deepEqual([steps.get('dump')!.services, steps.get('dump')!.ipcache, steps.get('dump')!.same], [50, 2, true]);
    // the second delete of the same key finds nothing: counted once
    assert.deepEqual(steps.get('del')!.res, { put: 0, deleted: 1, cleared: 0 });
    // a bad key size is refused before the first write: the good put in the same batch is not applied
    assert.equal(steps.get('bad')!.thrown, true);
    assert.match(String(steps.get('bad')!.message), /put services: the key is not 8 bytes of hex/);
    assert.equal(steps.get('bad')!.services, 49);
    assert.deepEqual([steps.get('clear')!.res, steps.get('clear')!.ipcache], [{ put: 0, deleted: 0, cleared: 1 }, 0]);
    assert.equal(dump!.trim(), '49', 'the loader sees what the writer left');
  } finally {
    rmdirSync(cg);
  }
});
