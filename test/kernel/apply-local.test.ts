// apply and rollback for real on this machine's kernel, as root, without touching the machine: each
// run happens in fresh mount and network namespaces where /etc and /var/lib are private copies and the sysctls are per-namespace ones (net.core.somaxconn, tcp_tw_reuse,
// ip_local_port_range). The namespaces vanish with the process; nothing is left to clean up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

const PROFILE = `name: netns-test
description: per-namespace sysctls only, so the test can run on the machine's own kernel
kernel: {min: "5.10", recommended: "5.15"}
sysctl:
  net.core.somaxconn: 12345
  net.ipv4.tcp_tw_reuse: 1
  net.ipv4.ip_local_port_range: "20000\\t60999"
modules: []
bpffs: true
mtu: {apply: false}
channels: keep
`;

// Snapshot what apply may touch: files (sha256, mode, owner or absent), the sysctls, the bpffs mount.
const SNAPSHOT = `snap() {
  for f in /etc/sysctl.d/90-prep-node.conf /etc/fstab /var/lib/prep-node /var/lib/prep-node/journal.json; do
    if [ -e "$f" ]; then echo "$f $(stat -c '%F %a %u:%g' "$f") $( [ -f "$f" ] && sha256sum < "$f" | cut -c1-16)"; else echo "$f absent"; fi
  done
  for k in net/core/somaxconn net/ipv4/tcp_tw_reuse net/ipv4/ip_local_port_range; do echo "$k $(cat /proc/sys/$k | tr '\\t' ' ')"; done
  if grep -q ' /sys/fs/bpf ' /proc/mounts; then grep ' /sys/fs/bpf ' /proc/mounts | cut -d' ' -f1-3; else echo 'bpffs not mounted'; fi
}`;

/** Run a script in private mount and network namespaces with /etc and /var/lib private. */
function inSandbox(body: string) {
  const dir = mkdtempSync(join(tmpdir(), 'pn-apply-'));
  try {
    writeFileSync(join(dir, 'profile.yaml'), PROFILE);
    writeFileSync(join(dir, 'fstab'), '# fstab of the sandbox\n/dev/vda1 / ext4 defaults 0 1');
    const script = [
      'set -u',
      'mount --make-rprivate /',
      'ip link set lo up',
      // A private copy of /etc on a tmpfs (files are replaced by rename, so a bind-mounted single file won't do).
      `mkdir ${dir}/etc && mount -t tmpfs sandbox-etc ${dir}/etc && cp -a /etc/. ${dir}/etc/ && mount --bind ${dir}/etc /etc`,
      'rm -f /etc/sysctl.d/90-prep-node.conf',
      `cp ${dir}/fstab /etc/fstab`,
      'mount -t tmpfs sandbox-varlib /var/lib',
      'if grep -q " /sys/fs/bpf " /proc/mounts; then umount /sys/fs/bpf; fi',
      SNAPSHOT,
      `cli() { echo "@@ $*"; ${process.execPath} ${CLI} "$@" 2>&1; echo "@@ exit $?"; }`,
      body,
    ].join('\n');
    return spawnSync('unshare', ['--mount', '--net', 'sh', '-c', script], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', PROFILE: join(dir, 'profile.yaml') }, timeout: 120_000 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Split the run's output at `@@ ` markers into [header, text] pairs. */
function sections(out: string): [string, string][] {
  return out
    .split(/^@@ /m)
    .slice(1)
    .map((s) => {
      const nl = s.indexOf('\n');
      return [s.slice(0, nl), s.slice(nl + 1)];
    });
}

test('apply → verified → apply again changes nothing → rollback restores every file and value exactly', () => {
  const r = inSandbox(`echo '@@ before'; snap
cli apply --profile "$PROFILE" --dry-run
echo '@@ after-dry-run'; snap
cli apply --profile "$PROFILE"
echo '@@ applied'; snap; cat /etc/sysctl.d/90-prep-node.conf
cli apply --profile "$PROFILE"
cli check --profile "$PROFILE" --steal-seconds 1 --json
cli rollback
echo '@@ after-rollback'; snap
cli rollback`);
  assert.equal(r.status, 0, r.stderr);
  const s = sections(r.stdout);
  const get = (h: string, n = 0) => s.filter(([k]) => k.startsWith(h))[n]?.[1] ?? assert.fail(`no section ${h} #${n} in:\n${r.stdout}`);
  const before = get('before');
  assert.match(before, /^\/etc\/sysctl\.d\/90-prep-node\.conf absent$/m);
  assert.match(before, /^\/var\/lib\/prep-node absent$/m);
  assert.match(before, /^bpffs not mounted$/m);

  // The dry run prints each change current → desired with where it persists, and changes nothing.
  const dry = get('apply --profile');
  assert.match(dry, /profile netns-test: 6 changes planned \(dry run: nothing changed\)/);
  assert.match(dry, /sysctl\s+net\.core\.somaxconn\s+4096 → 12345\s+persist: \/etc\/sysctl\.d\/90-prep-node\.conf/);
  assert.match(dry, /sysctl\s+net\.ipv4\.ip_local_port_range\s+32768 60999 → 20000 60999/);
  assert.match(dry, /bpffs\s+\/sys\/fs\/bpf\s+not mounted → bpffs mounted/);
  assert.equal(get('exit', 0).trim(), '', 'dry run exit line');
  assert.equal(get('after-dry-run'), before);

  assert.match(get('apply --profile', 1), /applied and verified; originals journaled in \/var\/lib\/prep-node\/journal\.json/);
  const applied = get('applied');
  assert.match(applied, /^net\/core\/somaxconn 12345$/m);
  assert.match(applied, /^net\/ipv4\/ip_local_port_range 20000 60999$/m);
  assert.match(applied, /^bpffs \/sys\/fs\/bpf bpf$/m);
  assert.match(applied, /^\/var\/lib\/prep-node\/journal\.json regular file 600 0:0 /m);
  assert.match(applied, /^net\.ipv4\.ip_local_port_range = 20000 60999$/m, 'the sysctl.d file');
  assert.match(applied, /^\/etc\/fstab regular file 644 /m);

  assert.match(get('apply --profile', 2), /profile netns-test: nothing to change\n\s+\d+ items already as wanted/);
  const check = JSON.parse(get('check')) as { hosts: { checks: { id: string; status: string }[] }[] };
  const status = Object.fromEntries(check.hosts[0]!.checks.map((c) => [c.id, c.status]));
  assert.equal(status['sysctl.drift'], 'pass');
  assert.equal(status['bpf.fs'], 'pass');

  assert.match(get('rollback', 0), /rolled back profile netns-test[\s\S]*verified: every file is byte for byte as before/);
  assert.equal(get('after-rollback'), before);
  assert.match(get('rollback', 1), /nothing to roll back/);
  const exits = s.filter(([k]) => k.startsWith('exit')).map(([k]) => k);
  assert.deepEqual(exits, ['exit 0', 'exit 0', 'exit 0', 'exit 1', 'exit 0', 'exit 0'], 'check exits 1 for findings outside the profile items (no ip_vs here)');
});

test('an unknown sysctl is refused with exit 5 and nothing is changed', () => {
  const r = inSandbox(`echo '@@ before'; snap
sed -i 's/net.core.somaxconn: 12345/net.core.no_such_key: 1/' "$PROFILE"
cli apply --profile "$PROFILE"
echo '@@ after'; snap`);
  const s = sections(r.stdout);
  const out = s.find(([k]) => k.startsWith('apply'))?.[1] ?? '';
  assert.equal(out.trim(), 'prep-node: local: unknown sysctl on this kernel: net.core.no_such_key (fix the name in the profile, or list it under optionalSysctl if a module or kernel version provides it)');
  assert.ok(s.some(([k]) => k === 'exit 5'), r.stdout);
  assert.equal(s.find(([k]) => k === 'after')?.[1], s.find(([k]) => k === 'before')?.[1]);
});

test('a run that died after journaling is found and finished by the next apply', () => {
  const r = inSandbox(`mkdir -p /var/lib/prep-node
printf '%s' '{"schema":"prep-node/journal/v1","createdStateDir":true,"values":[{"tuner":"sysctl","key":"net.core.somaxconn","value":"4096"}],"files":[],"dirs":[],"run":{"id":"dead-run","profile":"netns-test","state":"applying","started":"2026-01-01T00:00:00Z"}}' > /var/lib/prep-node/journal.json
echo 12345 > /proc/sys/net/core/somaxconn
cli apply --profile "$PROFILE"
cli rollback
echo '@@ after'; snap`);
  const s = sections(r.stdout);
  assert.match(s.find(([k]) => k.startsWith('apply'))?.[1] ?? '', /! run dead-run \(profile netns-test, started 2026-01-01T00:00:00Z\) did not finish: finishing it now/);
  const after = s.find(([k]) => k === 'after')?.[1] ?? '';
  assert.match(after, /^net\/core\/somaxconn 4096$/m, 'the dead run journaled 4096 first: rollback restores it, not the 12345 it left');
  assert.match(after, /^\/var\/lib\/prep-node absent$/m);
});
