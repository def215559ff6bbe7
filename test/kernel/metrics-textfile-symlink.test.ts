// Issue 17 item 1, the attack as demonstrated: the metrics textfile writer runs as root in a
// directory another account owns (node_exporter's often is); that account reads the writer's pid
// from its pid file and plants `prep_node_datapath.prom.<pid>.tmp` as a symlink to a root-only file.
// Before the fix the writer wrote its metrics through the link within one interval. Now it refuses
// a directory that another account can write to (unless sticky and root's) and creates its temp file
// with mktemp (O_EXCL, random name). Real root, a real unprivileged account (nobody), the real loader
// binary; everything under a temporary directory this test removes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { METRICS_FILE, textfileScript } from '../../src/datapath/metrics.js';

const DP = fileURLToPath(new URL('../../../bpf/build/prep-node-dp', import.meta.url));
const notRoot = process.getuid?.() !== 0 ? 'needs root (the writer runs as root; the attacker is nobody)' : false;
const NOBODY = 65534;

function setup(): { base: string; tf: string; script: string; victim: string } {
  const base = mkdtempSync(join(tmpdir(), 'pn-tf-'));
  chmodSync(base, 0o755);
  const tf = join(base, 'textfile');
  mkdirSync(tf);
  const victim = join(base, 'victim');
  writeFileSync(victim, 'root only\n', { mode: 0o600 });
  const script = join(base, 'writer.sh');
  writeFileSync(script, textfileScript({ bin: DP, dir: tf, intervalSeconds: 1 }), { mode: 0o755 });
  return { base, tf, script, victim };
}

async function runLoop(script: string, pidfile: string, during: (pid: number) => void): Promise<string> {
  const child = spawn('/bin/sh', [script, 'loop', pidfile], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  try {
    for (let i = 0; i < 50 && !existsSync(pidfile); i++) await sleep(100);
    const pid = Number(readFileSync(pidfile, 'utf8').trim());
    during(pid);
    await sleep(2500); // two intervals and more
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
  return stderr;
}

test('a symlink planted at the writer\'s temp file by the directory\'s owner is never written through', { skip: notRoot }, async () => {
  const { base, tf, script, victim } = setup();
  try {
    chownSync(tf, NOBODY, NOBODY); // the textfile directory belongs to another account
    const stderr = await runLoop(script, join(base, 'pid'), (pid) => {
      const ln = spawnSync('runuser', ['-u', 'nobody', '--', 'ln', '-s', victim, join(tf, `${METRICS_FILE}.${pid}.tmp`)], { encoding: 'utf8' });
      assert.equal(ln.status, 0, ln.stderr);
    });
    assert.equal(readFileSync(victim, 'utf8'), 'root only\n', 'the root-only file was overwritten through the planted symlink');
    assert.equal(existsSync(join(tf, METRICS_FILE)), false, 'nothing written into a directory another account controls');
    assert.match(stderr, /refusing .*textfile.*owned by uid 65534/);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('a directory writable by its group or others is refused; root\'s sticky directory is used', { skip: notRoot }, () => {
  const { base, tf, script } = setup();
  try {
    chmodSync(tf, 0o777);
    const open = spawnSync('/bin/sh', [script, 'once'], { encoding: 'utf8' });
    assert.notEqual(open.status, 0);
    assert.match(open.stderr, /refusing .*textfile.*writable by group or others/);
    assert.equal(existsSync(join(tf, METRICS_FILE)), false);

    chmodSync(tf, 0o1777);
    const sticky = spawnSync('/bin/sh', [script, 'once'], { encoding: 'utf8' });
    assert.equal(sticky.status, 0, sticky.stderr);
    const st = statSync(join(tf, METRICS_FILE));
    assert.equal(st.mode & 0o777, 0o644, 'node_exporter (another account) can read the file');
    assert.match(readFileSync(join(tf, METRICS_FILE), 'utf8'), /^# HELP prep_node_datapath_up /);
    assert.deepEqual(readdirSync(tf), [METRICS_FILE], 'no temp file left behind');
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});
