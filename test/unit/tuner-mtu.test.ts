import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NET_FACTS_SCRIPT, parseNetFacts } from '../../src/probes/net.js';
import { judgeMtu } from '../../src/checks/net-mtu.js';
import { NodeRefusal } from '../../src/errors.js';
import { readFilesCommand } from '../../src/tuners/files.js';
import { MTU_SCRIPT, MTU_UNIT, MTU_UNIT_LINK, NETPLAN_FILE, mtuBootCommands, mtuBootFiles, mtuTuner } from '../../src/tuners/mtu.js';
import {
  findIfupdownStanza,
  netConfigScript,
  netplanEthernets,
  netplanMatches,
  netplanOrder,
  networkdMtu,
  parseNetConfig,
} from '../../src/tuners/netmgr.js';
import type { TunerPlan } from '../../src/tuners/types.js';
import { FixtureHost, type Answer } from '../helpers/fixture-host.js';
import { fixture } from '../helpers/fixtures.js';
import { parseProfile } from '../../src/profiles/load.js';

const DIR = fileURLToPath(new URL('../../../test/fixtures/tuners/mtu/', import.meta.url));
const PROVENANCE = /^# (fixture:|recorded|written from the format)/;

/** A fixture under test/fixtures/tuners/mtu/ without its provenance lines. */
function mtuFixture(path: string): string {
  const lines = readFileSync(DIR + path, 'utf8').split('\n');
  while (lines.length > 0 && PROVENANCE.test(lines[0]!)) lines.shift();
  return lines.join('\n');
}

/** Every file under a scenario's root/, as node path → content. */
function rootFiles(scenario: string): Map<string, Buffer> {
  const root = `${DIR}${scenario}/root`;
  const out = new Map<string, Buffer>();
  // A scenario with no network configuration files has an empty root, which git does not keep.
  if (!existsSync(root)) return out;
  const walk = (dir: string) => {
    for (const name of readdirSync(root + dir)) {
      const p = `${dir}/${name}`;
      if (statSync(root + p).isDirectory()) walk(p);
      else out.set(p, readFileSync(root + p));
    }
  };
  walk('');
  return out;
}

/** netConfigScript's output for a scenario: its netconfig.txt plus its root/ files, as the script prints them. */
function netConfigOutput(scenario: string, files = rootFiles(scenario)): string {
  const parts = [mtuFixture(`${scenario}/netconfig.txt`).replace(/\n*$/, '\n')];
  for (const [path, content] of files) parts.push(`@@ file ${path}\n${content.toString('base64')}\n`);
  return parts.join('');
}

/** readFilesCommand's output for these paths (absent unless given). */
function filesAnswer(paths: string[], present: Map<string, string> = new Map()): string {
  return paths
    .map((p) => {
      const c = present.get(p);
      return c === undefined ? `@@ ${p}\nA\n` : `@@ ${p}\nF 644 0 0\n${Buffer.from(c).toString('base64')}\n`;
    })
    .join('');
}

const BASE = `name: test\ndescription: t\nkernel: {min: "5.10", recommended: "5.15"}\n`;
const profile = (mtu: string) => parseProfile(`${BASE}mtu: ${mtu}\n`, 'test.yaml');

async function plan(answers: Record<string, Answer>, mtu: string): Promise<{ plan: TunerPlan; host: FixtureHost }> {
  const host = new FixtureHost(answers, 'node1');
  return { plan: await mtuTuner.plan({ host, profile: profile(mtu), cache: new Map() }), host };
}

const VM_FACTS = mtuFixture('debian12-vm-netfacts.txt');
const VM_CONFIG = mtuFixture('debian12-vm-netconfig.txt');
const VM_INTERFACES = parseNetConfig(VM_CONFIG, ['eth0']).files.get('/etc/network/interfaces')!.toString('utf8');

test('the test VM (recorded, ifupdown, eth0 by DHCP): 9000 is a pre-up line in its stanza, since ifupdown ignores mtu under inet dhcp', async () => {
  const { plan: p, host } = await plan({ [NET_FACTS_SCRIPT]: VM_FACTS, [netConfigScript(['eth0'])]: VM_CONFIG, [readFilesCommand(['/etc/network/interfaces'])]: filesAnswer(['/etc/network/interfaces'], new Map([['/etc/network/interfaces', VM_INTERFACES]])) }, '{primary: 9000}');
  assert.deepEqual(p.changes, [{ key: 'eth0', current: '1500', desired: '9000', persist: 'ifupdown (/etc/network/interfaces)' }]);
  assert.deepEqual(p.originals, [{ tuner: 'mtu', key: 'eth0', value: '1500' }]);
  assert.deepEqual(p.files, [
    {
      path: '/etc/network/interfaces',
      content:
        '# prep-node test VM: eth0 by DHCP (net.ifnames=0 on the kernel command line)\nsource /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n\n' +
        'allow-hotplug eth0\niface eth0 inet dhcp\n    pre-up ip link set dev eth0 mtu 9000\n',
    },
  ]);
  assert.deepEqual(p.unchanged, []);
  assert.equal(host.commands.length, 3);
});

test('the test VM again after apply: nothing to change (idempotent)', async () => {
  const after = VM_INTERFACES.replace('iface eth0 inet dhcp\n', 'iface eth0 inet dhcp\n    pre-up ip link set dev eth0 mtu 9000\n');
  const facts = VM_FACTS.replace(/^mtu 1500$/m, 'mtu 9000');
  const config = VM_CONFIG.replace(/^@@ file \/etc\/network\/interfaces\n.*$/m, `@@ file /etc/network/interfaces\n${Buffer.from(after).toString('base64')}`);
  const { plan: p } = await plan({ [NET_FACTS_SCRIPT]: facts, [netConfigScript(['eth0'])]: config, [readFilesCommand(['/etc/network/interfaces'])]: filesAnswer(['/etc/network/interfaces'], new Map([['/etc/network/interfaces', after]])) }, '{primary: 9000}');
  assert.deepEqual(p.changes, []);
  assert.deepEqual(p.files, []);
  assert.deepEqual(p.unchanged, ['eth0 mtu 9000 (default route)']);
  assert.equal(judgeMtu(parseNetFacts(facts), profile('{primary: 9000}').mtu).status, 'pass', 'net.mtu passes after apply');
});

test('already right: nothing to change and no file read or written', async () => {
  const { plan: p, host } = await plan({ [NET_FACTS_SCRIPT]: VM_FACTS, [netConfigScript(['eth0'])]: VM_CONFIG }, '{primary: 1500}');
  assert.deepEqual(p, { tuner: 'mtu', changes: [], files: [], originals: [], unchanged: ['eth0 mtu 1500 (default route)'], notes: [] });
  assert.equal(host.commands.length, 2);
});

test('mtu.apply false plans nothing and reads nothing', async () => {
  const { plan: p, host } = await plan({}, '{primary: 9000, apply: false}');
  assert.deepEqual(p.changes, []);
  assert.deepEqual(host.commands, []);
});

test('an MTU above the link maximum (recorded: virtio-net with host_mtu=1500) is a NodeRefusal that says what to set', async () => {
  const config = mtuFixture('debian12-vm-hostmtu1500-netconfig.txt');
  await assert.rejects(
    plan({ [NET_FACTS_SCRIPT]: VM_FACTS, [netConfigScript(['eth0'])]: config }, '{primary: 9000}'),
    (e: unknown) =>
      e instanceof NodeRefusal &&
      e.exitCode === 5 &&
      e.message === "node1: eth0 carries at most MTU 1500 (ip -d link: maxmtu 1500; the host or provider sets it), the profile's mtu.primary asks 9000: set mtu.primary to 1500 or less",
  );
});

test('an MTU below the link minimum is refused', async () => {
  const config = VM_CONFIG.replace('minmtu 68', 'minmtu 576');
  await assert.rejects(plan({ [NET_FACTS_SCRIPT]: VM_FACTS, [netConfigScript(['eth0'])]: config }, '{primary: 100}'), /eth0 takes no MTU below 576 \(ip -d link: minmtu 576\), the profile's mtu.primary asks 100: raise mtu.primary$/);
});

test('ifupdown static stanza in interfaces.d: the mtu option is replaced in place, tabs and comments kept', async () => {
  const files = rootFiles('ifupdown-static');
  const path = '/etc/network/interfaces.d/50-cloud-init';
  const { plan: p } = await plan({ [NET_FACTS_SCRIPT]: VM_FACTS, [netConfigScript(['eth0'])]: netConfigOutput('ifupdown-static', files), [readFilesCommand([path])]: filesAnswer([path]) }, '{primary: 9000}');
  assert.deepEqual(p.changes, [{ key: 'eth0', current: '1500', desired: '9000', persist: `ifupdown (${path})` }]);
  assert.equal(p.files.length, 1);
  assert.equal(p.files[0]!.path, path);
  assert.equal(p.files[0]!.content, files.get(path)!.toString().replace('\tmtu 1400\n', '\tmtu 9000\n'));
});

test('ifupdown: running right but the stanza says another MTU: the file is rewritten, no running change', async () => {
  const files = rootFiles('ifupdown-static');
  const path = '/etc/network/interfaces.d/50-cloud-init';
  const { plan: p } = await plan({ [NET_FACTS_SCRIPT]: VM_FACTS, [netConfigScript(['eth0'])]: netConfigOutput('ifupdown-static', files), [readFilesCommand([path])]: filesAnswer([path]) }, '{primary: 1500}');
  assert.deepEqual(p.changes, []);
  assert.deepEqual(p.unchanged, [`eth0 mtu 1500 (default route): ifupdown (${path}) said 1400, rewritten`]);
  assert.equal(p.files[0]!.content, files.get(path)!.toString().replace('\tmtu 1400\n', '\tmtu 1500\n'));
});

test('netplan (Ubuntu 22.04): a 0600 file of its own amends the definition ID that matches the interface by MAC', async () => {
  const facts = fixture('net/ubuntu-22.04-virtio-2of4-private.txt');
  const { plan: p } = await plan(
    { [NET_FACTS_SCRIPT]: facts, [netConfigScript(['ens10', 'ens3'])]: netConfigOutput('ubuntu22-netplan'), [readFilesCommand([NETPLAN_FILE])]: filesAnswer([NETPLAN_FILE]) },
    '{primary: 1500, private: 1450}',
  );
  assert.deepEqual(p.changes, []);
  const { plan: q } = await plan(
    { [NET_FACTS_SCRIPT]: facts, [netConfigScript(['ens10', 'ens3'])]: netConfigOutput('ubuntu22-netplan'), [readFilesCommand([NETPLAN_FILE])]: filesAnswer([NETPLAN_FILE]) },
    '{primary: 1500, private: 9000}',
  );
  assert.deepEqual(q.changes, [{ key: 'ens10', current: '1450', desired: '9000', persist: `netplan (${NETPLAN_FILE})` }]);
  assert.deepEqual(q.unchanged, ['ens3 mtu 1500 (default route)']);
  assert.deepEqual(q.files, [
    {
      path: NETPLAN_FILE,
      mode: 0o600,
      content:
        '# Written by prep-node from its profile; `prep-node rollback` removes it. Edits are overwritten by the next apply.\n# profile test\n' +
        'network:\n  version: 2\n  ethernets:\n    "private0":\n      mtu: 9000\n',
    },
  ]);
  // Merged as netplan merges it: the private definition keeps its match and address and gains the MTU.
  const merged = netplanEthernets('fixture', new Map([...rootFiles('ubuntu22-netplan'), [NETPLAN_FILE, Buffer.from(q.files[0]!.content)]]));
  assert.deepEqual(merged.get('private0'), { addresses: ['10.0.0.2/16'], match: { macaddress: '86:00:00:4e:1c:02' }, mtu: 9000 });
});

test('systemd-networkd: a drop-in next to the .network file the link uses', async () => {
  const net = '/etc/systemd/network/10-eth0.network';
  const dropIn = '/etc/systemd/network/10-eth0.network.d/90-prep-node.conf';
  const { plan: p } = await plan(
    {
      [NET_FACTS_SCRIPT]: VM_FACTS,
      [netConfigScript(['eth0'])]: netConfigOutput('debian12-networkd'),
      [readFilesCommand([net, dropIn])]: filesAnswer([net, dropIn], new Map([[net, rootFiles('debian12-networkd').get(net)!.toString()]])),
      [readFilesCommand([dropIn])]: filesAnswer([dropIn]),
    },
    '{primary: 1450}',
  );
  assert.deepEqual(p.changes, [{ key: 'eth0', current: '1500', desired: '1450', persist: `systemd-networkd (${dropIn})` }]);
  assert.deepEqual(p.files, [
    {
      path: dropIn,
      mode: 0o644,
      content: '# Written by prep-node from its profile; `prep-node rollback` removes it. Edits are overwritten by the next apply.\n# profile test\n[Link]\nMTUBytes=1450\n',
    },
  ]);
});

test('no known network manager on a systemd node: the boot unit, enabled by a symlink', async () => {
  const paths = [MTU_SCRIPT, MTU_UNIT, MTU_UNIT_LINK];
  const { plan: p } = await plan(
    { [NET_FACTS_SCRIPT]: VM_FACTS, [netConfigScript(['eth0'])]: netConfigOutput('none'), [readFilesCommand([MTU_SCRIPT])]: filesAnswer([MTU_SCRIPT]), [readFilesCommand(paths)]: filesAnswer(paths) },
    '{primary: 1400}',
  );
  assert.deepEqual(p.changes, [{ key: 'eth0', current: '1500', desired: '1400', persist: `boot unit (${MTU_UNIT})` }]);
  assert.deepEqual(p.files, mtuBootFiles(profile('{primary: 1400}')));
  assert.deepEqual(p.files.map((f) => f.path), paths);
  assert.deepEqual(p.files[2], { path: MTU_UNIT_LINK, symlink: MTU_UNIT });
});

test('no known network manager and no systemd: refused with what to do', async () => {
  const config = netConfigOutput('none').replace('@@ systemd\nyes', '@@ systemd\nno');
  await assert.rejects(plan({ [NET_FACTS_SCRIPT]: VM_FACTS, [netConfigScript(['eth0'])]: config }, '{primary: 1400}'), /node1: no netplan, systemd-networkd or ifupdown configuration for eth0 and no systemd to run a boot unit: .*mtu\.apply: false/);
});

test('NetworkManager (RHEL 9): a bridge port is refused first; a plain NetworkManager interface gets the nmcli command', async () => {
  const facts = fixture('net/rhel-9-bridge.txt');
  const answers = { [NET_FACTS_SCRIPT]: facts, [netConfigScript(['eth0', 'eth1'])]: netConfigOutput('rhel9-nm') };
  await assert.rejects(plan(answers, '{primary: 9000, private: 9000}'), /eth0 is a port of br0: prep-node does not set MTUs on bridge or bond ports/);
  await assert.rejects(plan(answers, '{primary: 1500, private: 1500}'), /eth1 is managed by NetworkManager \(connection "System eth1"\), which prep-node does not edit: run nmcli connection modify 'System eth1' 802-3-ethernet\.mtu 1500 and set mtu\.apply: false/);
});

test('apply sets the running values, default route last; restoreCommand puts one back', () => {
  const command = mtuTuner.applyCommand({
    tuner: 'mtu',
    changes: [
      { key: 'ens10', current: '1450', desired: '9000', persist: 'x' },
      { key: 'ens3', current: '1500', desired: '9000', persist: 'x' },
    ],
    files: [],
    originals: [],
    unchanged: [],
    notes: [],
  });
  assert.equal(command, 'ip link set dev ens10 mtu 9000 && ip link set dev ens3 mtu 9000');
  assert.equal(mtuTuner.restoreCommand({ tuner: 'mtu', key: 'eth0', value: '1500' }), 'ip link set dev eth0 mtu 1500');
  assert.equal(mtuTuner.cutsSession, true);
  assert.doesNotMatch(mtuTuner.reloadCommand!, /networkctl|netplan apply/);
});

test('the default route is changed last when several interfaces change', async () => {
  const facts = fixture('net/ubuntu-22.04-virtio-2of4-private.txt');
  const { plan: p } = await plan(
    { [NET_FACTS_SCRIPT]: facts, [netConfigScript(['ens10', 'ens3'])]: netConfigOutput('ubuntu22-netplan'), [readFilesCommand([NETPLAN_FILE])]: filesAnswer([NETPLAN_FILE]) },
    '{primary: 1400, private: 1400}',
  );
  assert.deepEqual(p.changes.map((c) => c.key), ['ens10', 'ens3']);
  // ens3 is DHCP: netplan would let the lease's MTU (UseMTU=true) undo ours.
  assert.match(p.files[0]!.content!, /\n {4}"ens3":\n {6}mtu: 1400\n {6}dhcp4-overrides:\n {8}use-mtu: false\n {4}"private0":\n {6}mtu: 1400\n$/);
});

test('mtuBootFiles/mtuBootCommands: nothing when every MTU is 1500; otherwise a script sh accepts, a unit and its link', () => {
  assert.deepEqual(mtuBootFiles(profile('{}')), []);
  assert.deepEqual(mtuBootCommands(profile('{}')), []);
  assert.deepEqual(mtuBootFiles(profile('{primary: 9000, apply: false}')), []);
  const files = mtuBootFiles(profile('{primary: 1500, private: 9000}'));
  assert.deepEqual(files.map((f) => [f.path, f.mode]), [[MTU_SCRIPT, 0o755], [MTU_UNIT, 0o644], [MTU_UNIT_LINK, undefined]]);
  assert.match(files[0]!.content!, /^PRIMARY=1500\nPRIVATE=9000$/m);
  execFileSync('sh', ['-n', '-c', files[0]!.content!]);
  assert.match(files[1]!.content!, /^After=network-online\.target$/m);
  assert.match(files[1]!.content!, /^WantedBy=multi-user\.target$/m);
  assert.deepEqual(mtuBootCommands(profile('{primary: 9000}')), ['if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi', MTU_SCRIPT]);
});

test('netmgr: netplan file order, matching and ifupdown stanzas', () => {
  assert.deepEqual(netplanOrder(['/etc/netplan/50-a.yaml', '/lib/netplan/00-x.yaml', '/run/netplan/50-a.yaml', '/etc/netplan/90-prep-node.yaml']), ['/lib/netplan/00-x.yaml', '/run/netplan/50-a.yaml', '/etc/netplan/90-prep-node.yaml']);
  const who = { name: 'enp1s0', mac: '52:54:00:00:00:01', driver: 'virtio_net' };
  assert.ok(netplanMatches('enp1s0', {}, who));
  assert.ok(!netplanMatches('eth0', {}, who));
  assert.ok(netplanMatches('all', { match: { name: 'enp*' } }, who));
  assert.ok(netplanMatches('v', { match: { driver: ['e1000', 'virtio*'] } }, who));
  assert.ok(!netplanMatches('m', { match: { macaddress: '52:54:00:00:00:02' } }, who));
  assert.ok(!netplanMatches('renamed', { match: { macaddress: '52:54:00:00:00:01' }, 'set-name': 'lan0' }, who));
  const files = new Map([['/etc/network/interfaces', Buffer.from('auto eth1\niface eth1 inet6 auto\n\niface eth1 inet manual\n  mtu 9000\niface eth2 inet dhcp\n')]]);
  assert.deepEqual(findIfupdownStanza(files, 'eth1'), { file: '/etc/network/interfaces', family: 'inet', method: 'manual', start: 3, end: 5 });
  assert.equal(findIfupdownStanza(files, 'eth3'), null);
  assert.equal(networkdMtu('[Match]\nName=eth0\n[Link]\nMTUBytes=9000\n'), 9000);
  assert.equal(networkdMtu('[Network]\nMTUBytes=9000\n'), null);
  assert.equal(networkdMtu('[Link]\nMTUBytes=1K\n'), 1024);
});

test('netmgr: the recorded VM parses; an unmanaged networkd link has no network file', () => {
  const c = parseNetConfig(VM_CONFIG, ['eth0']);
  assert.deepEqual(c.links.get('eth0'), { name: 'eth0', minMtu: 68, maxMtu: 65535, mac: '52:54:00:12:34:56', networkdFile: null, nmConnection: null });
  assert.equal(c.systemd, true);
  assert.equal(c.netplan, false);
  assert.deepEqual([...c.files.keys()], ['/etc/network/interfaces']);
  const u = parseNetConfig('@@ link eth0\nnetworkd-state unmanaged\nnetworkd-file /usr/lib/systemd/network/99-default.network\n', ['eth0']);
  assert.equal(u.links.get('eth0')!.networkdFile, null);
});

test('the boot script: default-route interface to primary, other physical ones to private, bridge ports and virtual links alone (fake /sys and ip)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'prep-node-mtu-'));
  try {
    const sys = join(dir, 'sys');
    const link = (name: string, mtu: number, opts: { device?: boolean; master?: string } = {}) => {
      mkdirSync(join(sys, 'class/net', name), { recursive: true });
      writeFileSync(join(sys, 'class/net', name, 'mtu'), `${mtu}\n`);
      if (opts.device !== false) mkdirSync(join(sys, 'class/net', name, 'device'));
      if (opts.master) writeFileSync(join(sys, 'class/net', name, 'master'), '');
    };
    link('lo', 65536, { device: false });
    link('ens3', 1500);
    link('ens10', 1450);
    link('ens11', 9000);
    link('eth5', 1500, { master: 'br0' });
    link('veth1', 1500, { device: false });
    mkdirSync(join(dir, 'bin'));
    writeFileSync(
      join(dir, 'bin/ip'),
      `#!/bin/sh\ncase "$*" in\n  "-4 route show default") echo "default via 203.0.113.1 dev ens3 proto dhcp src 203.0.113.10 metric 100" ;;\n  "link set"*) echo "$*" >> ${dir}/calls ;;\nesac\n`,
    );
    chmodSync(join(dir, 'bin/ip'), 0o755);
    const script = join(dir, 'script');
    writeFileSync(script, mtuBootFiles(profile('{primary: 1400, private: 9000}'))[0]!.content!);
    execFileSync('sh', [script], { env: { ...process.env, PATH: `${dir}/bin:${process.env.PATH}`, PREP_NODE_SYSFS: sys } });
    assert.equal(readFileSync(join(dir, 'calls'), 'utf8'), 'link set dev ens10 mtu 9000\nlink set dev ens3 mtu 1400\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
