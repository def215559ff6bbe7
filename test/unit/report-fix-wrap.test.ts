// The report on a terminal: why and fix lines wrapped to its width with a hanging indent (no wrapping
// when not a terminal), and a fix apply performs led by the prep-node command that does it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderHost } from '../../src/report/table.js';
import { fixText, wrap } from '../../src/report/fix.js';
import type { CheckResult } from '../../src/checks/types.js';
import type { HostReport } from '../../src/report/model.js';

const long = 'kernel.somaxconn and every other sysctl the profile names '.repeat(8).trim();
const drift: CheckResult = {
  id: 'sysctl.drift', title: 'sysctl drift', status: 'fail', observed: '3 differ', expected: 'the profile', ignored: false,
  detail: long, remedy: `sysctl -w net.core.somaxconn=4096 && printf '%s\\n' 'net.core.somaxconn = 4096' > /etc/sysctl.d/90-prep-node.conf`,
};
const report = (checks: CheckResult[]): HostReport => ({ target: 'root@node1:2222', profile: './my profile.yaml', checks });

test('on a terminal of 80 columns every line fits, continuation lines hang under the text', () => {
  const text = renderHost(report([drift]), { color: false, width: 80 });
  const lines = text.split('\n');
  for (const l of lines) assert.ok(l.length <= 80, `${l.length}: ${l}`);
  const why = lines.findIndex((l) => l.includes('why: '));
  const indent = lines[why]!.indexOf('why: ') + 5;
  assert.match(lines[why + 1]!, new RegExp(`^ {${indent}}\\S`));
  // nothing lost or broken mid-word: joining the wrapped lines gives the text back
  const whyLines = [lines[why]!.slice(indent)];
  for (let i = why + 1; !lines[i]!.includes('fix: '); i++) whyLines.push(lines[i]!.trim());
  assert.equal(whyLines.join(' '), long);
});

test('not a terminal (no width): why and fix stay one line each, as scripts read them', () => {
  const text = renderHost(report([drift]), { color: false });
  assert.equal(text.split('\n').filter((l) => l.includes('why: ')).length, 1);
  assert.ok(text.split('\n').some((l) => l.trimStart().startsWith('why: ') && l.endsWith(long)));
});

test('a fix apply performs leads with the prep-node command, the manual command after it', () => {
  const text = renderHost(report([drift]), { color: false });
  assert.match(text, /fix: prep-node apply root@node1:2222 --profile '\.\/my profile\.yaml'; by hand: sysctl -w net\.core\.somaxconn=4096/);
  assert.equal(fixText('net.mtu', 'ip link set dev eth0 mtu 1500', 'local', 'k8s-worker'), 'prep-node apply local --profile k8s-worker; by hand: ip link set dev eth0 mtu 1500');
  assert.equal(fixText('ipvs.modules', 'modprobe ip_vs', 'n1', 'k8s-worker'), 'prep-node apply n1 --profile k8s-worker; by hand: modprobe ip_vs');
});

test('a fix apply cannot do (a kernel to install, a provider to ask) has no apply line', () => {
  assert.equal(fixText('kernel.version', 'upgrade the kernel', 'n1', 'k8s-worker'), 'upgrade the kernel');
  assert.equal(fixText('kubelet.basics', 'boot a kernel with CONFIG_BRIDGE_NETFILTER (see ipvs.modules)', 'n1', 'p'), 'boot a kernel with CONFIG_BRIDGE_NETFILTER (see ipvs.modules)');
  assert.equal(fixText('net.multiqueue', 'ask the provider for multiqueue virtio-net on eth0', 'n1', 'p'), 'ask the provider for multiqueue virtio-net on eth0');
});

test('a word longer than the width stays whole on its own line', () => {
  assert.equal(wrap(`a ${'x'.repeat(30)} b`, 20, 0, 2), `a\n  ${'x'.repeat(30)}\n  b`);
});
