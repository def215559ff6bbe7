import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expandHostPattern, iniValue, parseInventory, readInventory, selectHosts } from '../../src/inventory.js';
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

// ------------------------------------------------------------------------ Ansible inventories


/** Kubespray's inventory/sample/inventory.ini shape (hosts under [all], groups by name, children). */
const KUBESPRAY = `# ## Configure 'ip' variable to bind kubernetes services on a
# ## different ip than the default iface
[all]
node1 ansible_host=95.54.0.12  # ip=10.3.0.1 etcd_member_name=etcd1
node2 ansible_host=95.54.0.13 ansible_user=ops  # ip=10.3.0.2 etcd_member_name=etcd2
node3 ansible_host=95.54.0.14 ansible_port=2222
node4 ansible_host=95.54.0.15 ansible_ssh_private_key_file=/keys/id_node4

[kube_control_plane]
node1
node2

[etcd]
node1

[kube_node]
node3
node4

[calico_rr]

[k8s_cluster:children]
kube_control_plane
kube_node
calico_rr

[k8s_cluster:vars]
ansible_user=admin
ansible_port=22

[kube_node:vars]
ansible_port=2200
`;

test('Ansible INI (Kubespray sample shape): hosts, groups, children, group vars by depth, host vars win', () => {
  const specs = parseInventory(KUBESPRAY, 'inventory.ini');
  assert.deepEqual(
    specs.map((s) => [s.target.spec, s.target.host, s.target.user, s.target.port, s.target.identityFile]),
    [
      ['node1', '95.54.0.12', 'admin', 22, undefined],
      ['node2', '95.54.0.13', 'ops', 22, undefined],
      ['node3', '95.54.0.14', 'admin', 2222, undefined],
      ['node4', '95.54.0.15', 'admin', 2200, '/keys/id_node4'],
    ],
  );
});

test('--limit: names, groups, globs, unions with : and ,, & intersection, ! exclusion, ~regex', () => {
  const inv = readInventory(KUBESPRAY, 'inventory.ini');
  const cases: [string, string[]][] = [
    ['node1', ['node1']],
    ['kube_node', ['node3', 'node4']],
    ['k8s_cluster', ['node1', 'node2', 'node3', 'node4']],
    ['node[12]', ['node1', 'node2']],
    ['node*:!etcd', ['node2', 'node3', 'node4']],
    ['kube_control_plane,kube_node', ['node1', 'node2', 'node3', 'node4']],
    ['k8s_cluster:&kube_control_plane:!node1', ['node2']],
    ['kube_node:etcd', ['node1', 'node3', 'node4']],
    ['!etcd', ['node2', 'node3', 'node4']],
    ['all', ['node1', 'node2', 'node3', 'node4']],
    ['~node[34]', ['node3', 'node4']],
    ['kube_contr*', ['node1', 'node2']],
  ];
  for (const [pattern, want] of cases) assert.deepEqual(selectHosts(inv, pattern), want, pattern);
  assert.throws(() => selectHosts(inv, 'nosuch'), /--limit "nosuch" matches no host in the inventory/);
  assert.throws(() => selectHosts(inv, 'calico_rr'), /matches no host/);
});

test('Ansible INI: ranges, host:port, ungrouped hosts before any section, Python-literal values, ansible_connection=local', () => {
  const inv = readInventory(
    `bastion.example:2201 ansible_user="ci user"
[web]
web[01:03].example ansible_user='deploy'
db-[a:c] ansible_port=2022
n[0:10:5]
local ansible_connection=local
[web:vars]
enabled=True
`,
    'hosts.ini',
  );
  assert.equal(inv.format, 'ansible-ini');
  assert.deepEqual([...inv.hosts.keys()], ['bastion.example', 'web01.example', 'web02.example', 'web03.example', 'db-a', 'db-b', 'db-c', 'n0', 'n5', 'n10', 'local']);
  assert.deepEqual(selectHosts(inv, 'ungrouped'), ['bastion.example']);
  assert.deepEqual(iniValue('2222'), 2222);
  assert.deepEqual(iniValue('True'), true);
  assert.deepEqual(iniValue("'quoted'"), 'quoted');
  assert.deepEqual(iniValue('[1, 2]'), [1, 2]);
  assert.deepEqual(iniValue('plain text'), 'plain text');
  assert.throws(() => parseInventory('bastion.example:2201 ansible_user="ci user"\n', 'hosts.ini'), /hosts\.ini:1: bastion\.example: invalid ansible_user "ci user"/);
});

/** The same fleet in Ansible's YAML form. */
const YAML_INV = `all:
  vars:
    ansible_user: admin
  hosts:
    bastion:
      ansible_host: 198.18.0.1
  children:
    k8s_cluster:
      vars:
        ansible_port: 2200
      children:
        kube_control_plane:
          hosts:
            cp[1:2]:
        kube_node:
          hosts:
            worker1: {ansible_host: 198.18.0.11, ansible_port: 22}
            worker2:
              ansible_host: 198.18.0.12
              ansible_ssh_private_key_file: ~/.ssh/worker
              prep_node_profile: k8s-worker
`;

test('Ansible YAML: nested children, vars at every level, ranges, prep_node_profile', () => {
  const inv = readInventory(YAML_INV, 'hosts.yaml');
  assert.equal(inv.format, 'ansible-yaml');
  const specs = parseInventory(YAML_INV, 'hosts.yaml');
  assert.deepEqual(
    specs.map((s) => [s.target.spec, s.target.host, s.target.user, s.target.port, s.target.identityFile, s.profile]),
    [
      ['bastion', '198.18.0.1', 'admin', undefined, undefined, undefined],
      ['cp1', 'cp1', 'admin', 2200, undefined, undefined],
      ['cp2', 'cp2', 'admin', 2200, undefined, undefined],
      ['worker1', '198.18.0.11', 'admin', 22, undefined, undefined],
      ['worker2', '198.18.0.12', 'admin', 2200, '~/.ssh/worker', 'k8s-worker'],
    ],
  );
  assert.deepEqual(selectHosts(inv, 'k8s_cluster:!kube_node'), ['cp1', 'cp2']);
  assert.deepEqual(selectHosts(inv, 'ungrouped'), ['bastion']);
});

test('a host in several groups: vars merge by group depth, then group name', () => {
  const specs = parseInventory(
    `[a]
h1
[b]
h1
[parent:children]
b
[a:vars]
ansible_user=from_a
ansible_port=1001
[b:vars]
ansible_user=from_b
[parent:vars]
ansible_port=1002
ansible_user=from_parent
`,
    'x.ini',
  );
  // a and parent are depth 1 (a before parent by name), b is depth 2: b's user, parent's port
  assert.deepEqual([specs[0]!.target.user, specs[0]!.target.port], ['from_b', 1002]);
});

test('bad Ansible inventories: file:line and what is wrong', () => {
  const cases: [string, RegExp][] = [
    ['[web\nh1\n', /^x:1: bad section header "\[web"/],
    ['[web:hosts2]\nh1\n', /^x:1: unknown section kind ":hosts2"/],
    ['[web]\nh1\n[web:vars]\nnovalue\n', /^x:4: expected key=value in \[web:vars\]/],
    ['[web]\nh1 ansible_port\n', /^x:2: expected key=value after the host name, got "ansible_port"/],
    ['[web]\nh1 ansible_port=70000\n', /^x:2: h1: ansible_port "70000" is not a number from 1 to 65535/],
    ['[web]\nh[5:1]\n', /^x:2: bad host range "\[5:1\]" in "h\[5:1\]": the start is after the end/],
    ['[web]\nh[1:x]\n', /^x:2: bad host range/],
    ['[web]\nh1 ansible_user="unclosed\n', /^x:2: unclosed " quote/],
    ['[a:children]\nb\n[b:children]\na\n[a]\nh1\n', /group "a" is its own descendant \(a → b → a\)/],
    ['[9bad]\nh1\n', /^x:1: bad group name "9bad"/],
    ['all:\n  hosts:\n    h1:\n  children:\n    web:\n      host:\n        h2:\n', /^x:6: group "web": unknown key "host": expected hosts, children or vars/],
    ['all:\n  hosts:\n    - h1\n', /^x:2: all\.hosts: expected a mapping of host names/],
    ['all:\n  hosts:\n    h1: [1]\n', /^x:3: all\.hosts\.h1: expected the host's variables as a mapping/],
    ['all:\n  hosts:\n    h1: {ansible_port: x}\n', /^x:3: h1: ansible_port "x" is not a number/],
  ];
  for (const [text, re] of cases) {
    assert.throws(() => parseInventory(text, 'x'), (e: unknown) => e instanceof UsageError && re.test(e.message), text);
  }
});

test('200k hosts parse without a stack overflow; ranges past the host limit fail with one clear line', () => {
  const inv = readInventory(`[big]\nnode[000000:199999]\n[big:vars]\nansible_user=ops\n`, 'big.ini');
  assert.equal(inv.hosts.size, 200_000);
  const specs = parseInventory(`[big]\nnode[000000:199999]\n`, 'big.ini');
  assert.equal(specs.length, 200_000);
  assert.equal(specs[199_999]!.target.host, 'node199999');
  assert.deepEqual(selectHosts(inv, 'node00000[12]'), ['node000001', 'node000002']);
  assert.throws(() => readInventory('[big]\nn[0:99999999]\n', 'huge.ini'), /^UsageError: huge\.ini:2: "n\[0:99999999\]" names 100000000 hosts, more than 1000000 in one inventory/);
  let n = 0;
  expandHostPattern('r[1:3]-[a:b]', () => n++, 'x');
  assert.equal(n, 6);
});
