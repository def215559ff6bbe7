// `prep-node agent`: run on the node as root; follows the API server and keeps the datapath's maps
// in step with the cluster. Options in, the agent run until SIGTERM/SIGINT, an exit code out.
import { hostname } from 'node:os';
import { UsageError } from '../errors.js';
import { parseListen } from '../agent/http.js';
import { makeLogger } from '../agent/log.js';
import { runAgent } from '../agent/run.js';
import { parseCaps } from './datapath.js';

export interface AgentOptions {
  kubeconfig?: string;
  nodeName?: string;
  listen: string;
  logFormat: string;
  removeOnExit?: boolean;
  minSyncInterval: number;
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
    stop,
  });
  // everything is closed; a library's lingering socket (client-node's keep-alive agent) must not keep
  // a stopped agent running
  process.exit(code);
}
