// The agent's OCI image (`make image`, built here when stale) read as a registry or runtime would, and
// run with podman on this machine: the archive's layout checked blob by blob (digests, sizes, media
// types, diff_ids), the agent's directory inside it as `agent install` lays it out, `--version` and
// `agent --help`, then the agent itself with the DaemonSet's capabilities against the fake API server
// (src/bench/fake-apiserver.ts: a loopback stand-in speaking the real wire protocol; no kube-apiserver
// can run here) until /readyz is 200. Host network, as the DaemonSet, but nothing shared is touched:
// the container's /sys/fs/bpf is a bpffs instance of this test's own, its cgroup a child cgroup made
// here, no tc device is attached, the agent listens on 127.0.0.1 only; podman's storage is a
// directory of this test's, removed after. Root (bpffs, cgroups, podman).
//
// Podman here: as root it raises a container's RLIMIT_NOFILE/NPROC above this sandbox's hard limits,
// which needs CAP_SYS_RESOURCE, and this sandbox's root has not got it ("setrlimit RLIMIT_NOFILE:
// Operation not permitted"): so --ulimit sets both below them. crun refuses the host's hybrid cgroup
// layout ("cgroups in hybrid mode not supported"): runc runs the containers.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { REPO } from '../helpers/vm.js';
import { IMAGE_ARCHIVE, VERSION, ensureImage } from '../helpers/sea.js';
import { FakeApiServer, endpointSlice, namespace, node, service } from '../../src/bench/fake-apiserver.js';

const notRoot = process.getuid?.() !== 0 ? 'needs root (podman, bpffs, cgroups)' : false;
const NAME = `localhost/prep-node-agent:${VERSION}`;
const AGENT_DIR = '/usr/local/lib/prep-node-agent';

type Json = Record<string, unknown>;

function sh(cmd: string, args: string[], timeout = 180_000): { status: number | null; out: string; err: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => res(port));
    });
  });
}

function cgroup2Root(): string {
  const line = readFileSync('/proc/mounts', 'utf8').split('\n').find((l) => l.split(' ')[2] === 'cgroup2');
  if (!line) throw new Error('no cgroup2 mount');
  return line.split(' ')[1]!;
}

describe('the agent\'s OCI image (make image) with podman', { skip: notRoot, timeout: 900_000 }, () => {
  let dir: string;
  let storage: string[];
  let bpffs: string;
  let cgroup: string;
  let mounted = false;
  const api = new FakeApiServer();
  const podman = (args: string[], timeout?: number) => sh('podman', [...storage, ...args], timeout);
  // the limits below this sandbox's (see above); the agent needs a few hundred descriptors
  const ulimits = ['--ulimit', 'nofile=4096:4096', '--ulimit', 'nproc=4096:4096'];
  const run = (args: string[]) => podman(['run', '--rm', ...ulimits, '--network=none', NAME, ...args]);

  before(() => {
    ensureImage();
    dir = mkdtempSync(join(tmpdir(), 'prep-node-oci-'));
    storage = ['--root', join(dir, 'storage'), '--runroot', join(dir, 'run'), '--storage-driver', 'vfs', '--runtime', 'runc', '--cgroup-manager', 'cgroupfs', '--events-backend', 'none'];
    const r = sh('skopeo', ['copy', '-q', `oci-archive:${IMAGE_ARCHIVE}:${VERSION}`, `containers-storage:[vfs@${join(dir, 'storage')}+${join(dir, 'run')}]${NAME}`]);
    assert.equal(r.status, 0, `skopeo copy: ${r.err}`);
  });
  after(async () => {
    await api.stop();
    if (!dir) return;
    podman(['rm', '-f', '-a']);
    if (mounted) sh('umount', [bpffs]);
    if (cgroup) {
      try {
        rmdirSync(cgroup);
      } catch {
        /* not made, or a process still in it: reported by the test that made it */
      }
    }
    podman(['rmi', '-a', '-f']);
    rmSync(dir, { recursive: true, force: true });
  });

  test('the archive is a valid OCI image layout: every blob has the digest and size it is named by, the layers\' diff_ids are their uncompressed digests', () => {
    const layout = join(dir, 'layout');
    mkdirSync(layout);
    const x = sh('tar', ['-C', layout, '-xf', IMAGE_ARCHIVE]);
    assert.equal(x.status, 0, x.err);
    assert.deepEqual(JSON.parse(readFileSync(join(layout, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
    const blob = (d: { digest: string; size: number; mediaType: string }): Buffer => {
      const [alg, hex] = d.digest.split(':') as [string, string];
      assert.equal(alg, 'sha256');
      const b = readFileSync(join(layout, 'blobs/sha256', hex));
      assert.equal(createHash('sha256').update(b).digest('hex'), hex, `${d.mediaType} ${d.digest}: content matches its name`);
      assert.equal(b.length, d.size, `${d.mediaType} ${d.digest}: size`);
      return b;
    };
    const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { schemaVersion: number; manifests: { digest: string; size: number; mediaType: string; annotations?: Json }[] };
    assert.equal(index.schemaVersion, 2);
    assert.equal(index.manifests.length, 1, 'one image, one tag');
    const m = index.manifests[0]!;
    assert.equal(m.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(m.annotations?.['org.opencontainers.image.ref.name'], VERSION, 'tagged with the package version');
    const manifest = JSON.parse(blob(m).toString()) as { schemaVersion: number; config: { digest: string; size: number; mediaType: string }; layers: { digest: string; size: number; mediaType: string }[] };
    assert.equal(manifest.config.mediaType, 'application/vnd.oci.image.config.v1+json');
    const config = JSON.parse(blob(manifest.config).toString()) as { architecture: string; os: string; config: Json; rootfs: { type: string; diff_ids: string[] }; history: Json[] };
    assert.deepEqual([config.architecture, config.os], ['amd64', 'linux']);
    assert.deepEqual(config.config.Entrypoint, [`${AGENT_DIR}/prep-node`]);
    assert.deepEqual(config.config.Cmd, ['agent']);
    assert.match((config.config.Env as string[]).find((e) => e.startsWith('PATH=')) ?? '', new RegExp(`^PATH=${AGENT_DIR}:`), 'prep-node on the PATH (the DaemonSet\'s command)');
    assert.equal(manifest.layers.length, 2, 'the Debian base and the agent');
    assert.equal(config.rootfs.diff_ids.length, manifest.layers.length);
    assert.equal(config.history.length, manifest.layers.length, 'a history entry per layer');
    manifest.layers.forEach((l, i) => {
      assert.equal(l.mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');
      const tar = gunzipSync(blob(l));
      assert.equal(`sha256:${createHash('sha256').update(tar).digest('hex')}`, config.rootfs.diff_ids[i], `layer ${i}: diff_id`);
    });
    // nothing in the layout that the index does not reach (umoci gc ran)
    const reached = new Set([m.digest, manifest.config.digest, ...manifest.layers.map((l) => l.digest)].map((d) => d.slice(7)));
    assert.deepEqual(readdirSync(join(layout, 'blobs/sha256')).sort(), [...reached].sort());
    // the name the DaemonSet runs is this image's
    assert.match(readFileSync(join(REPO, 'deploy/daemonset.yaml'), 'utf8'), new RegExp(`^ +image: ${NAME.replace(/[.]/g, '\\.')}$`, 'm'));
  });

  test('podman runs it: --version is the package\'s, `agent --help` the agent\'s usage', () => {
    const v = run(['--version']);
    assert.equal(v.status, 0, v.err);
    assert.equal(v.out.trim(), VERSION);
    const h = run(['agent', '--help']);
    assert.equal(h.status, 0, h.err);
    assert.match(h.out, /^Usage: prep-node agent \[options\]/m);
  });

  test('inside: the agent\'s directory as `agent install` lays it out (root\'s, writable by root only, SHA256SUMS holds), glibc and libstdc++ for the executable, sh and coreutils for its Host', () => {
    // the entrypoint is prep-node: sh comes through --entrypoint
    const s = podman(['run', '--rm', ...ulimits, '--network=none', '--entrypoint', 'sh', NAME, '-c', `cd ${AGENT_DIR} && sha256sum -c --quiet SHA256SUMS && stat -c '%n %U:%G %a' . * && echo "missing libraries: [$(LD_LIBRARY_PATH=. ldd ./prep-node ./koffi.node ./libbpf.so.1 ./libelf.so.1 | grep 'not found' | tr -s ' \\t\\n' ' ')]"`]);
    assert.equal(s.status, 0, `${s.out}${s.err}`);
    const lines = s.out.trim().split('\n');
    assert.equal(lines.pop(), 'missing libraries: []', s.out);
    const files = new Map(lines.map((l) => [l.split(' ')[0]!, l.split(' ').slice(1).join(' ')]));
    assert.deepEqual([...files.keys()].sort(), ['.', 'SHA256SUMS', 'koffi.node', 'libbpf.so.1', 'libelf.so.1', 'prep-node', 'prep-node-dp', 'prep-node-dp.sha256']);
    for (const [f, meta] of files) assert.match(meta, /^root:root (755|644)$/, `${f}: ${meta}`);
  });

  test('the agent in the container, with the DaemonSet\'s capabilities and mounts: lists from the fake API server, /readyz 200, the datapath pinned in the bpffs it was given, listening on loopback only', async () => {
    bpffs = join(dir, 'bpf');
    mkdirSync(bpffs);
    const m = sh('mount', ['-t', 'bpf', 'bpf', bpffs]);
    assert.equal(m.status, 0, m.err);
    mounted = true;
    cgroup = join(cgroup2Root(), `pn-oci-${process.pid}`);
    mkdirSync(cgroup);
    await api.start();
    api.apply(namespace('default'));
    api.apply(node('oci-node', '198.18.0.10'));
    api.apply(service('default', 'web', '10.96.0.80', [{ name: 'http', port: 80, targetPort: 8080 }]));
    api.apply(endpointSlice('default', 'web', 'a', [{ name: 'http', port: 8080 }], [{ ip: '198.18.0.11' }]));
    const kubeconfig = join(dir, 'kubeconfig');
    api.writeKubeconfig(kubeconfig);
    const port = await freePort();
    const started = podman([
      'run', '-d', '--name', 'pn-agent', ...ulimits, '--network=host',
      '--cap-drop', 'ALL', '--cap-add', 'BPF,NET_ADMIN,SYS_ADMIN,SYS_RESOURCE',
      '-v', `${bpffs}:/sys/fs/bpf`, '-v', `${cgroup}:/run/prep-node/cgroupv2:ro`, '-v', `${kubeconfig}:/etc/prep-node/agent.kubeconfig:ro`,
      NAME, 'agent', '--kubeconfig', '/etc/prep-node/agent.kubeconfig', '--node-name', 'oci-node', '--listen', `127.0.0.1:${port}`, '--cgroup', '/run/prep-node/cgroupv2',
    ]);
    assert.equal(started.status, 0, started.err);
    const logs = () => podman(['logs', 'pn-agent']);
    let ready: { status: number; body: string } | undefined;
    const end = Date.now() + 180_000;
    while (Date.now() < end) {
      const res = await fetch(`http://127.0.0.1:${port}/readyz`).then(async (r) => ({ status: r.status, body: await r.text() })).catch(() => undefined);
      if (res?.status === 200) {
        ready = res;
        break;
      }
      if (podman(['inspect', '-f', '{{.State.Running}}', 'pn-agent']).out.trim() !== 'true') break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    const l = logs();
    assert.ok(ready, `/readyz never 200:\n${l.out}${l.err}`);
    assert.ok(api.requests.get('list Service')! >= 1 && api.requests.get('list EndpointSlice')! >= 1, JSON.stringify([...api.requests]));
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    assert.match(metrics, /^prep_node_agent_ready 1$/m);
    // the datapath the agent installed is in the bpffs this test gave it, and only there
    const maps = () => readdirSync(join(bpffs, 'prep-node/maps'));
    assert.ok(maps().includes('services') && maps().includes('backends'), maps().join(' '));
    // its sockets: the listen address asked for, nothing else (pid namespace: ask the kernel by port)
    const ss = sh('ss', ['-Htln']).out.split('\n').filter((x) => x.includes(`:${port} `));
    assert.deepEqual(ss.map((x) => x.trim().split(/\s+/)[3]), [`127.0.0.1:${port}`]);
    // SIGTERM (podman stop): exit 0, the datapath left serving, as on a node
    const stop = podman(['stop', '-t', '30', 'pn-agent']);
    assert.equal(stop.status, 0, stop.err);
    assert.equal(podman(['inspect', '-f', '{{.State.ExitCode}}', 'pn-agent']).out.trim(), '0', logs().err);
    assert.ok(maps().includes('services'), 'pins outlive the container');
    writeFileSync(join(dir, 'agent.log'), logs().err);
  });
});
