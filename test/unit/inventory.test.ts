import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseInventory } from '../../src/inventory.js';
import { UsageError } from '../../src/errors.js';

test('inventory: strings and objects, defaults, target fields win over entry fields', () => {
  const specs = parseInventory(
    `defaults: {user: admin, port: 2222, profile: k8s-worker}
hosts:
  - node1
  - root@node2:22
  - {host: node3, user: ops, port: 2200, profile: ./cp.yaml}
  - local
`,
    'inv.yaml',
  );
  assert.deepEqual(
    specs.map((s) => [s.target.host, s.target.user, s.target.port, s.profile]),
    [
      ['node1', 'admin', 2222, 'k8s-worker'],
      ['node2', 'root', 22, 'k8s-worker'],
      ['node3', 'ops', 2200, './cp.yaml'],
      ['local', undefined, undefined, 'k8s-worker'],
    ],
  );
});

test('inventory errors say where and what is expected', () => {
  const cases: [string, RegExp][] = [
    ['hosts: []\n', /hosts: expected at least one host/],
    ['hosts:\n  - {host: a, port: 70000}\n', /hosts\.0\.port: .*65535/],
    ['nodes: [a]\n', /nodes/],
    ['hosts:\n  - "bad host"\n', /bad target "bad host"/],
    ['hosts: [a\n', /invalid YAML/],
  ];
  for (const [text, re] of cases) {
    assert.throws(() => parseInventory(text, 'inv.yaml'), (e: unknown) => e instanceof UsageError && re.test(e.message), text);
  }
});
