// `prep-node agent`: run on the node as root; follows the API server and keeps the datapath's maps
// in step with the cluster. Options in, the agent run until SIGTERM/SIGINT, an exit code out.
// `prep-node agent install|remove TARGET`: the single executable as a systemd service on nodes.
import { hostname } from 'node:os';
import { ExitCode, UsageError, printable } from '../errors.js';
import type { Host } from '../host/host.js';
import { installAgent, localInputs, removeAgent } from '../agent/install.js';
import { parseListen } from '../agent/http.js';
import { makeLogger } from '../agent/log.js';
import { runAgent } from '../agent/run.js';
import { parseCaps } from './datapath.js';
import type { Io } from './check.js';
import { failureLine, fleetExitCode, resolveHosts, runOnHosts, throwIfOnlyHostFailed, type HostOptions } from './hosts.js';

export interface AgentOptions {
  kubeconfig?: string;
  nodeName?: string;
  listen: string;
  logFormat: string;
  removeOnExit?: boolean;
  minSyncInterval: number;
  ctGcInterval: number;
  tcDev?: string[];
  cap?: string;
  cgroup?: string;
  flowEvents?: boolean;
}

export async function agent(options: AgentOptions): Promise<number> {
  if (options.logFormat !== 'text' && options.logFormat !== 'json') throw new UsageError(`--log-format ${options.logFormat}: expected text or json`);
  const listen = parseListen(options.listen);
  const caps = parseCaps(options.cap);
  const log = makeLogger(options.logFormat);
  const stop = new Promise<string>((res) => {
    process.once('SIGTERM', () => res('SIGTERM'));
    process.once('SIGINT', () => res('SIGINT'));
  });
  const code = await runAgent({
    ...(options.kubeconfig !== undefined && { kubeconfig: options.kubeconfig }),
    nodeName: options.nodeName ?? hostname(),
    listen,
    log,
    install: { ...(caps && { caps }), ...(options.tcDev && { tcDevs: options.tcDev }), ...(options.cgroup && { cgroup: options.cgroup }), ...(options.flowEvents === false && { flowEvents: false }) },
    ...(options.removeOnExit && { removeOnExit: true }),
    minSyncIntervalMs: options.minSyncInterval,
    ctGcIntervalS: options.ctGcInterval,
    stop,
  });
  // everything is closed; a library's lingering socket (client-node's keep-alive agent) must not keep
  // a stopped agent running
  process.exit(code);
}

export interface AgentInstallCliOptions extends HostOptions {
  kubeconfig?: string;
  nodeName?: string;
  listen: string;
}

/** `prep-node agent install TARGET...`: the single executable as a systemd service on each node. */
export async function agentInstall(targets: string[], options: AgentInstallCliOptions, io: Io): Promise<ExitCode> {
  if (options.kubeconfig === undefined) throw new UsageError('agent install: --kubeconfig FILE is required (the node\'s agent reads the API server with it)');
  if (targets.length === 0 && !options.inventory) throw new UsageError('agent install: give a TARGET (or --inventory): the node to install the agent on');
  const o = { kubeconfig: options.kubeconfig, listen: options.listen, ...(options.nodeName !== undefined && { nodeName: options.nodeName }) };
  await localInputs(o); // refuse bad input before any node is contacted
  return fleet(targets, options, io, (host) => installAgent(host, o).then((r) => `agent installed: ${r.unit} enabled, ${r.active} (${(r.uploadedBytes / 1048576).toFixed(0)} MiB uploaded)`));
}

/** `prep-node agent remove TARGET...`: stop the service and put back what install changed. */
export async function agentRemove(targets: string[], options: HostOptions, io: Io): Promise<ExitCode> {
  if (targets.length === 0 && !options.inventory) throw new UsageError('agent remove: give a TARGET (or --inventory): the node to remove the agent from');
  return fleet(targets, options, io, (host) =>
    removeAgent(host).then((r) => (r.removed ? `agent removed, the node restored as before install${r.datapathRemoved ? ' (the datapath it brought removed too)' : ''}` : 'the agent is not installed here (no journal): nothing to do')),
  );
}

async function fleet(targets: string[], options: HostOptions, io: Io, work: (host: Host) => Promise<string>): Promise<ExitCode> {
  const specs = await resolveHosts(targets, options);
  const outcomes = await runOnHosts(specs, options, { work: (host) => work(host), summarize: (line) => line }, io.stdout.isTTY === true);
  throwIfOnlyHostFailed(outcomes);
  for (const o of outcomes) io.stdout.write(`${printable('error' in o ? failureLine(o.spec, o.error) : `${o.spec.target.spec}: ${o.value}`)}\n`);
  return fleetExitCode(outcomes, ExitCode.ok);
}
