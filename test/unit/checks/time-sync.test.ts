import { test } from 'node:test';
import assert from 'node:assert/strict';
import { judgeTimeSync, TIME_SYNC_COMMAND, timeSync } from '../../../src/checks/time-sync.js';
import { fixtureContext } from '../../helpers/fixture-host.js';
import { fixture } from '../../helpers/fixtures.js';

const judge = (host: string) => judgeTimeSync(fixture(`hosts/${host}/time-sync.out`));

test('recorded local 6.18: no systemd, no daemon -> fail with install remedy', () => {
  const f = judge('local-6.18');
  assert.equal(f.status, 'fail');
  assert.equal(f.observed, 'no time daemon running (chronyd, ntpd, systemd-timesyncd); no systemd');
  assert.match(f.remedy ?? '', /apt-get install -y chrony/);
  assert.match(f.remedy ?? '', /systemctl enable --now systemd-timesyncd/);
  assert.match(f.detail ?? '', /TLS certificates/);
});

test('recorded Debian 12 VM: systemd but no daemon, NTPSynchronized=no -> fail', () => {
  const f = judge('debian-12');
  assert.equal(f.status, 'fail');
  assert.equal(f.observed, 'no time daemon running (chronyd, ntpd, systemd-timesyncd); NTPSynchronized=no');
});

test('Ubuntu 20.04/22.04 (written): systemd-timesyncd synchronised -> pass', () => {
  for (const host of ['ubuntu-20.04', 'ubuntu-22.04']) {
    const f = judge(host);
    assert.equal(f.status, 'pass', host);
    assert.equal(f.observed, 'systemd-timesyncd: synchronised (NTPSynchronized=yes)');
  }
});

test('Ubuntu 24.04 on AWS (written): chronyd Leap status Normal -> pass with reference and offset', () => {
  const f = judge('ubuntu-24.04');
  assert.equal(f.status, 'pass');
  assert.equal(f.observed, 'chronyd: synchronised (Leap status Normal, reference A9FEA97B (169.254.169.123), stratum 4, 0.000004521 seconds slow of NTP time)');
});

test('Debian 10 (written): ntpd with a * system peer in ntpq -pn -> pass', () => {
  const f = judge('debian-10');
  assert.equal(f.status, 'pass');
  assert.equal(f.observed, 'ntpd: synchronised (system peer 203.0.113.10)');
});

test('Debian 11 (written): timesyncd not synchronised -> fail pointing at timesync-status', () => {
  const f = judge('debian-11');
  assert.equal(f.status, 'fail');
  assert.equal(f.observed, 'systemd-timesyncd: not synchronised (NTPSynchronized=no)');
  assert.match(f.remedy ?? '', /timedatectl timesync-status/);
});

test('RHEL 8 (written): chronyd Not synchronised -> fail pointing at chronyc sources', () => {
  const f = judge('rhel-8');
  assert.equal(f.status, 'fail');
  assert.equal(f.observed, 'chronyd: not synchronised (Leap status Not synchronised)');
  assert.match(f.remedy ?? '', /chronyc -n sources -v/);
});

test('RHEL 9 (written): chronyd synchronised but timesyncd also runs -> warn, disable the other', () => {
  const f = judge('rhel-9');
  assert.equal(f.status, 'warn');
  assert.match(f.observed, /^chronyd: synchronised .*; also running: systemd-timesyncd$/);
  assert.equal(f.remedy, 'systemctl disable --now systemd-timesyncd');
});

test('Amazon Linux 2023 (written): chronyd runs but chronyc cannot talk to it -> error, not pass', () => {
  const f = judge('al2023');
  assert.equal(f.status, 'error');
  assert.equal(f.observed, 'chronyd: cannot tell (chronyc failed: 506 Cannot talk to daemon)');
});

test('ntpstat decides when present; no daemon but the kernel still synchronised -> warn', () => {
  const ntpstat = '@@ daemons\nntpd\n@@ ntpstat\nunsynchronised\n  time server re-starting\n   polling server every 8 s\nrc=1\n@@ ntpq\n     remote           refid      st t when poll reach   delay   offset  jitter\nrc=0\n';
  const f = judgeTimeSync(ntpstat);
  assert.equal(f.status, 'fail');
  assert.equal(f.observed, 'ntpd: not synchronised (unsynchronised)');
  const stale = judgeTimeSync('@@ daemons\n@@ timedatectl\nNTP=no\nNTPSynchronized=yes\nrc=0\n');
  assert.equal(stale.status, 'warn');
  assert.match(stale.observed, /no time daemon running; the kernel still reports synchronised/);
});

test('the check is one remote command that needs no root', async () => {
  const ctx = await fixtureContext({ [TIME_SYNC_COMMAND]: fixture('hosts/ubuntu-24.04/time-sync.out') });
  const f = await timeSync.run(ctx);
  assert.equal(f.status, 'pass');
  assert.deepEqual(ctx.host.commands, [TIME_SYNC_COMMAND]);
  assert.match(TIME_SYNC_COMMAND, /chronyc -n tracking/);
  assert.match(TIME_SYNC_COMMAND, /timedatectl show -p NTP -p NTPSynchronized/);
  assert.match(TIME_SYNC_COMMAND, /ntpq -pn/);
});
