// The auto-revert, for real on this machine (no systemd here: the detached-sleep mechanism), inside a
// private mount namespace whose /var/lib is a tmpfs: armed then cancelled, it never runs; armed and
// left alone, it runs its restore commands once and leaves the marker the next run reports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const DIST = new URL('../../src/', import.meta.url).href;

test('armed then cancelled: never runs; armed and left: restores once and leaves a marker; a late cancel says it ran', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pn-revert-'));
  try {
    const driver = join(dir, 'driver.mjs');
    writeFileSync(
      driver,
      `import { LocalHost } from '${DIST}host/local.js';
import { armRevert, cancelRevert, pendingReverts } from '${DIST}tuners/revert.js';
import { takeRevertedMarker } from '${DIST}tuners/journal.js';
import { existsSync } from 'node:fs';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const host = new LocalHost('local');
const out = {};
let armed = await armRevert(host, 'cancel-me', ['touch ${dir}/ran-1'], 'mtu eth0 9000', 2);
out.mechanism = armed.mechanism;
out.pendingBefore = await pendingReverts(host);
out.cancel = await cancelRevert(host, 'cancel-me');
await sleep(3500);
out.ran1 = existsSync('${dir}/ran-1');
out.pendingAfter = await pendingReverts(host);
armed = await armRevert(host, 'let-it-run', ['touch ${dir}/ran-2'], 'mtu eth0 9000', 1);
await sleep(3500);
out.ran2 = existsSync('${dir}/ran-2');
out.lateCancel = await cancelRevert(host, 'let-it-run');
out.marker = await takeRevertedMarker(host);
out.markerAgain = await takeRevertedMarker(host);
console.log(JSON.stringify(out));
`,
    );
    const r = spawnSync('unshare', ['--mount', 'sh', '-c', `mount --make-rprivate / && mount -t tmpfs pn-revert /var/lib && exec ${process.execPath} ${driver}`], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(out.mechanism, 'background', 'no systemd on this machine');
    assert.deepEqual(out.pendingBefore, ['cancel-me']);
    assert.equal(out.cancel, 'cancelled');
    assert.equal(out.ran1, false, 'a cancelled revert never runs');
    assert.deepEqual(out.pendingAfter, []);
    assert.equal(out.ran2, true, 'an uncancelled revert runs its restore commands');
    assert.equal(out.lateCancel, 'ran');
    const marker = out.marker as string[];
    assert.equal(marker.length, 1);
    assert.match(marker[0]!, /^let-it-run \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ mtu eth0 9000$/);
    assert.deepEqual(out.markerAgain, [], 'the marker is reported once');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
