// `prep-node agent install|remove TARGET`: the single executable (`make sea`) on a node as a systemd
// service, journaled like apply's tuners so that remove puts the node back byte for byte. What install
// changes is recorded before the first write in /var/lib/prep-node/agent.json (root's, 0600): each file's
// original (absent, or its bytes, mode and owner), the directories it created, whether the datapath and
// the loader were there before. remove stops the service, removes the datapath when the agent brought
// it, and restores exactly that. The kubeconfig travels on stdin, never in argv or a log.
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { z } from 'zod';
import { NodeRefusal, UsageError } from '../errors.js';
import { shQuote, type Host } from '../host/host.js';
import { REMOTE_BIN_DIR } from '../datapath/loader.js';
import * as dp from '../datapath/index.js';
import { STATE_DIR } from '../tuners/journal.js';
import { missingParentsCommand, readFiles, restoreFilesScript, type FileState } from '../tuners/files.js';
import { parseListen } from './http.js';
import { loadKubeConfig } from './informers.js';

/** `make sea`'s output (dist/src/agent → dist/sea). */
export const LOCAL_SEA_DIR = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../sea');
/** On the node: the executable with koffi.node, libbpf, libelf and the loader beside it (root's, 0755). */
export const AGENT_DIR = '/usr/local/lib/prep-node-agent';
export const AGENT_FILES = ['prep-node', 'koffi.node', 'libbpf.so.1', 'libelf.so.1', 'prep-node-dp', 'prep-node-dp.sha256'] as const;
export const AGENT_KUBECONFIG = '/etc/prep-node/agent.kubeconfig';
export const AGENT_UNIT = '/etc/systemd/system/prep-node-agent.service';
/** `systemctl enable` as a file: the unit's WantedBy link, journaled like the unit itself. */
export const AGENT_WANTS = '/etc/systemd/system/multi-user.target.wants/prep-node-agent.service';
export const AGENT_JOURNAL = `${STATE_DIR}/agent.json`;
const KUBECONFIG_MAX = 1 << 20;

const Original = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('absent') }),
  z.object({ kind: z.literal('file'), base64: z.string(), mode: z.number().int(), uid: z.number().int(), gid: z.number().int() }),
  z.object({ kind: z.literal('symlink'), target: z.string() }),
]);
const AgentJournal = z.object({
  schema: z.literal('prep-node/agent-journal/v1'),
  state: z.enum(['installing', 'installed']),
  installed: z.string(),
  files: z.array(z.object({ path: z.string(), original: Original })),
  /** directories install created, outermost first (remove deletes them when empty) */
  dirs: z.array(z.string()),
  createdStateDir: z.boolean(),
  /** the loader file the agent uploads at its first start, when the node did not have it */
  loaderFile: z.string().nullable(),
  /** whether the datapath was installed before (remove leaves it then) */
  datapathBefore: z.boolean(),
});
type AgentJournal = z.infer<typeof AgentJournal>;

export interface AgentInstallOptions {
  kubeconfig: string;
  nodeName?: string;
  listen: string;
  /** tests: another `make sea` output */
  seaDir?: string;
}

/** What install planned and did, for the report. */
export interface InstallReport {
  unit: string;
  active: string;
  uploadedBytes: number;
}

// A Kubernetes node name is a DNS-1123 subdomain; it goes into ExecStart, so nothing else may.
const NODE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LISTEN_HOST = /^([0-9.]+|[0-9a-fA-F:]+|[A-Za-z0-9.-]+)$/;

/** Everything install needs from this machine, checked before the node is touched. */
export async function localInputs(o: AgentInstallOptions): Promise<{ kubeconfig: Buffer; files: { name: string; data: Buffer; sha: string }[]; execArgs: string[] }> {
  if (o.nodeName !== undefined && (o.nodeName.length > 253 || !NODE_NAME.test(o.nodeName))) throw new UsageError(`--node-name ${JSON.stringify(o.nodeName)}: expected a Kubernetes node name (lower-case letters, digits, '-' and '.')`);
  const listen = parseListen(o.listen);
  if (!LISTEN_HOST.test(listen.host)) throw new UsageError(`--listen ${o.listen}: expected ADDRESS:PORT with a numeric address or a host name`);
  const st = await stat(o.kubeconfig).catch((err: unknown) => {
    throw new UsageError(`--kubeconfig ${o.kubeconfig}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  });
  if (!st.isFile() || st.size > KUBECONFIG_MAX) throw new UsageError(`--kubeconfig ${o.kubeconfig}: expected a kubeconfig file of at most 1 MiB`);
  let cluster;
  try {
    cluster = loadKubeConfig(o.kubeconfig).getCurrentCluster();
  } catch (err) {
    throw new UsageError(`--kubeconfig ${o.kubeconfig}: ${(err as Error).message.split('\n')[0]}`, { cause: err });
  }
  if (!cluster) throw new UsageError(`--kubeconfig ${o.kubeconfig}: no current context with a cluster: set current-context`);
  const kubeconfig = await readFile(o.kubeconfig);
  const dir = o.seaDir ?? LOCAL_SEA_DIR;
  let sums: string;
  try {
    sums = await readFile(join(dir, 'SHA256SUMS'), 'utf8');
  } catch (err) {
    throw new UsageError(`the agent executable is not built (${join(dir, 'SHA256SUMS')} is missing): build it with \`make sea\``, { cause: err });
  }
  const files = [];
  for (const name of AGENT_FILES) {
    const data = await readFile(join(dir, name)).catch((err: unknown) => {
      throw new UsageError(`${join(dir, name)} is missing: build the agent with \`make sea\``, { cause: err });
    });
    const sha = createHash('sha256').update(data).digest('hex');
    const recorded = new RegExp(`^([0-9a-f]{64}) [ *]?${name.replace(/\./g, '\\.')}$`, 'm').exec(name === 'prep-node-dp.sha256' ? `${sha}  ${name}` : sums)?.[1];
    if (recorded !== sha) throw new UsageError(`${join(dir, name)} does not match the sha256 \`make sea\` recorded: not uploading it; rebuild with \`make sea\``);
    files.push({ name, data, sha });
  }
  const execArgs = ['agent', '--kubeconfig', AGENT_KUBECONFIG, '--listen', o.listen, ...(o.nodeName ? ['--node-name', o.nodeName] : [])];
  return { kubeconfig, files, execArgs };
}

/**
 * The unit. The agent runs as root with only the capabilities BPF needs: CAP_BPF and CAP_PERFMON
 * (load programs, create maps), CAP_NET_ADMIN (tc attach over netlink), CAP_SYS_ADMIN (cgroup attach,
 * pinning, kernels before CAP_BPF), CAP_SYS_RESOURCE (memlock on kernels that still charge it). The
 * file system is read-only but for bpffs and prep-node's state; no W^X lock (V8 compiles code).
 */
export function unitText(execArgs: string[]): string {
  return [
    '# Written by `prep-node agent install`; `prep-node agent remove` takes it away.',
    '[Unit]',
    'Description=prep-node agent: the eBPF datapath kept in step with the Kubernetes API server',
    'After=network-online.target',
    'Wants=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${AGENT_DIR}/prep-node ${execArgs.join(' ')}`,
    'Restart=on-failure',
    'RestartSec=2s',
    'CapabilityBoundingSet=CAP_BPF CAP_PERFMON CAP_NET_ADMIN CAP_SYS_ADMIN CAP_SYS_RESOURCE',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    `ReadWritePaths=/sys/fs/bpf ${STATE_DIR}`,
    'ProtectHome=yes',
    'PrivateTmp=yes',
    'ProtectKernelModules=yes',
    'ProtectClock=yes',
    'ProtectHostname=yes',
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK',
    'RestrictNamespaces=yes',
    'LockPersonality=yes',
    'SystemCallArchitectures=native',
    'UMask=0077',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

async function readAgentJournal(host: Host): Promise<AgentJournal | null> {
  const r = await host.exec(`if [ -e ${AGENT_JOURNAL} ]; then cat ${AGENT_JOURNAL}; else echo '@@absent'; fi`, { sudo: true });
  if (r.trim() === '@@absent') return null;
  try {
    return AgentJournal.parse(JSON.parse(r));
  } catch (err) {
    throw new NodeRefusal(host.name, `${AGENT_JOURNAL} is not prep-node's agent journal (${(err as Error).message.split('\n')[0]}): inspect it; prep-node will not act on it`);
  }
}

async function writeAgentJournal(host: Host, j: AgentJournal): Promise<void> {
  await host.writeFile(AGENT_JOURNAL, JSON.stringify(j, null, 2) + '\n', { sudo: true, mode: 0o600 });
}

const asOriginal = (s: FileState): z.infer<typeof Original> => {
  if (s.kind === 'file') return { kind: 'file', base64: s.content.toString('base64'), mode: s.mode, uid: s.uid, gid: s.gid };
  if (s.kind === 'symlink') return { kind: 'symlink', target: s.target };
  if (s.kind === 'absent') return { kind: 'absent' };
  throw new Error('not a file');
};

/** Upload one file gzipped into the root-owned directory, checked by sha256 before it is renamed into place. */
async function uploadChecked(host: Host, path: string, data: Buffer, sha: string, mode: number): Promise<void> {
  const p = shQuote(path);
  await host.exec(
    `set -e; t=$(mktemp ${p}.prep-node-XXXXXX); trap 'rm -f -- "$t"' EXIT; gzip -dc > "$t"; ` +
      `[ "$(sha256sum < "$t" | cut -d' ' -f1)" = ${sha} ] || { echo "${path}: sha256 mismatch after upload" >&2; exit 1; }; ` +
      `chmod ${mode.toString(8)} "$t"; mv -f -- "$t" ${p}; trap - EXIT`,
    { sudo: true, stdin: gzipSync(data, { level: 6 }), timeoutMs: 600_000 },
  );
}

/** Install the agent on one node; nothing is written before everything that can be refused was checked. */
export async function installAgent(host: Host, o: AgentInstallOptions): Promise<InstallReport> {
  const local = await localInputs(o);
  if ((await host.exec('[ -d /run/systemd/system ] && command -v systemctl >/dev/null && echo systemd || echo none', { sudo: true })).trim() !== 'systemd') {
    throw new NodeRefusal(host.name, 'systemd is not running on this node: the agent is installed as a systemd service (run `prep-node agent` under your own supervisor instead)');
  }
  if (await readAgentJournal(host)) throw new NodeRefusal(host.name, `the agent is already installed (${AGENT_JOURNAL}): run \`prep-node agent remove\` first`);
  if ((await host.run(`[ -e ${AGENT_DIR} ] || [ -L ${AGENT_DIR} ]`, { sudo: true })).code === 0) {
    throw new NodeRefusal(host.name, `${AGENT_DIR} exists and prep-node did not create it: move it away first`);
  }
  const paths = [AGENT_KUBECONFIG, AGENT_UNIT, AGENT_WANTS];
  const states = await readFiles(host, paths);
  for (const [p, s] of states) if (s.kind === 'other') throw new NodeRefusal(host.name, `${p} exists and is not a regular file or a symlink: move it away first`);
  const dpSha = local.files.find((f) => f.name === 'prep-node-dp')!.sha;
  const loaderFile = `${REMOTE_BIN_DIR}/prep-node-dp-${dpSha.slice(0, 12)}`;
  const facts = await host.exec(
    `[ -e /sys/fs/bpf/prep-node/state ] && echo dp=1 || echo dp=0; [ -e ${shQuote(loaderFile)} ] && echo loader=1 || echo loader=0; [ -d ${STATE_DIR} ] && echo state=1 || echo state=0`,
    { sudo: true },
  );
  const dirs = (await host.exec(missingParentsCommand([...paths, `${AGENT_DIR}/prep-node`, `${REMOTE_BIN_DIR}/x`]), { sudo: true }))
    .split('\n')
    .filter((d) => d !== '' && d !== STATE_DIR)
    .sort((a, b) => a.length - b.length);
  const journal: AgentJournal = {
    schema: 'prep-node/agent-journal/v1',
    state: 'installing',
    installed: new Date().toISOString(),
    files: paths.map((path) => ({ path, original: asOriginal(states.get(path)!) })),
    dirs,
    createdStateDir: facts.includes('state=0'),
    loaderFile: facts.includes('loader=0') ? loaderFile : null,
    datapathBefore: facts.includes('dp=1'),
  };
  // the journal first: a run that dies after this point is undone by remove (and a failure here, at once)
  await host.exec(`mkdir -p ${STATE_DIR} && chmod 700 ${STATE_DIR}`, { sudo: true });
  await writeAgentJournal(host, journal);
  try {
    return await writeAll(host, journal, local);
  } catch (err) {
    await removeAgent(host).catch(() => undefined);
    throw err;
  }
}

async function writeAll(host: Host, journal: AgentJournal, local: Awaited<ReturnType<typeof localInputs>>): Promise<InstallReport> {
  await host.exec(`umask 022; mkdir -p ${AGENT_DIR} ${REMOTE_BIN_DIR} "$(dirname ${AGENT_KUBECONFIG})" "$(dirname ${AGENT_WANTS})" && chown root:root ${AGENT_DIR} && chmod 755 ${AGENT_DIR}`, { sudo: true });
  let uploadedBytes = 0;
  for (const f of local.files) {
    await uploadChecked(host, `${AGENT_DIR}/${f.name}`, f.data, f.sha, f.name === 'prep-node' || f.name === 'prep-node-dp' ? 0o755 : 0o644);
    uploadedBytes += f.data.length;
  }
  await host.writeFile(AGENT_KUBECONFIG, local.kubeconfig, { sudo: true, mode: 0o600 });
  await host.writeFile(AGENT_UNIT, unitText(local.execArgs), { sudo: true, mode: 0o644 });
  await host.exec(`ln -sfn ${AGENT_UNIT} ${AGENT_WANTS}.prep-node-tmp && mv -fT ${AGENT_WANTS}.prep-node-tmp ${AGENT_WANTS} && systemctl daemon-reload && systemctl start prep-node-agent.service`, { sudo: true, timeoutMs: 120_000 });
  journal.state = 'installed';
  await writeAgentJournal(host, journal);
  const active = (await host.run('systemctl is-active prep-node-agent.service', { sudo: true })).stdout.trim();
  return { unit: AGENT_UNIT, active, uploadedBytes };
}

/** What remove did. */
export interface RemoveReport {
  removed: boolean;
  datapathRemoved: boolean;
}

/** Stop and remove the agent, and put back what install changed; a node without the journal is left alone. */
export async function removeAgent(host: Host): Promise<RemoveReport> {
  const j = await readAgentJournal(host);
  if (!j) return { removed: false, datapathRemoved: false };
  await host.run('systemctl stop prep-node-agent.service; systemctl reset-failed prep-node-agent.service', { sudo: true, timeoutMs: 120_000 });
  let datapathRemoved = false;
  if (!j.datapathBefore && (await host.run('[ -e /sys/fs/bpf/prep-node ]', { sudo: true })).code === 0) {
    await dp.remove(host);
    datapathRemoved = true;
  }
  const script = [
    restoreFilesScript(j.files.map((f) => ({ path: f.path, original: f.original.kind === 'file' ? { ...f.original, content: Buffer.from(f.original.base64, 'base64') } : f.original }))),
    ...AGENT_FILES.map((n) => `rm -f ${AGENT_DIR}/${n}`),
    `rmdir ${AGENT_DIR} 2>/dev/null || true`,
    ...(j.loaderFile ? [`rm -f ${shQuote(j.loaderFile)}`] : []),
    ...[...j.dirs].reverse().map((d) => `rmdir ${shQuote(d)} 2>/dev/null || true`),
    'systemctl daemon-reload',
    `rm -f ${AGENT_JOURNAL}`,
    ...(j.createdStateDir ? [`rmdir ${STATE_DIR} 2>/dev/null || true`] : []),
    '',
  ].join('\n');
  await host.exec('sh -s', { sudo: true, stdin: script, timeoutMs: 120_000 });
  return { removed: true, datapathRemoved };
}
