// `prep-node agent`: wires the pieces together on the node. Opens the pinned maps (installing the
// datapath with the loader first when it is not there, with the same options as `datapath install`),
// starts the informers, the sync loop and the endpoints, and runs until SIGTERM or SIGINT. On exit the
// datapath stays in place and keeps serving (as Cilium's agent leaves it); `removeOnExit` removes it.
import { existsSync } from 'node:fs';
import type { Server } from 'node:http';
import { setFlagsFromString } from 'node:v8';
import { ExitCode, PrepNodeError, UsageError } from '../errors.js';
import { LocalHost } from '../host/local.js';
import { loader, type InstallOptions } from '../datapath/loader.js';
import { removeNames, writeNames } from '../datapath/observe.js';
import { Agent } from './agent.js';
import { CT_GC_INTERVAL_S, CtGc } from './ct-gc.js';
import { listening, serveEndpoints } from './http.js';
import { Informers, loadKubeConfig } from './informers.js';
import type { Logger } from './log.js';
import { openPinnedMaps } from './map-writer.js';

export interface RunOptions {
  kubeconfig?: string;
  nodeName: string;
  listen: { host: string; port: number };
  log: Logger;
  install: InstallOptions;
  removeOnExit?: boolean;
  minSyncIntervalMs?: number;
  /** seconds between conntrack garbage collections (default CT_GC_INTERVAL_S; 0: only flushes) */
  ctGcIntervalS?: number;
  /** bpffs mount (default /sys/fs/bpf) */
  bpffs?: string;
  /** resolves when the agent should stop (a signal) */
  stop: Promise<string>;
  /** called once the endpoints listen (tests read the port) */
  onListening?: (addr: string) => void;
}

function kubeConfig(file: string | undefined) {
  if (file === undefined && !process.env.KUBERNETES_SERVICE_HOST) throw new UsageError('no --kubeconfig given and not in a cluster (KUBERNETES_SERVICE_HOST is unset): pass --kubeconfig FILE');
  try {
    return loadKubeConfig(file);
  } catch (err) {
    const why = (err as Error).message.split('\n')[0];
    throw new UsageError(file ? `--kubeconfig ${file}: ${why}` : `in-cluster config (service-account token): ${why}`, { cause: err });
  }
}

/** Run the agent until `o.stop` resolves; the exit code. */
export async function runAgent(o: RunOptions): Promise<number> {
  const kc = kubeConfig(o.kubeconfig);
  const bpffs = o.bpffs ?? '/sys/fs/bpf';
  const host = new LocalHost();
  if (!existsSync(`${bpffs}/prep-node/state`)) {
    o.log('info', 'the datapath is not installed: installing it with the loader');
    await loader.install(host, o.install);
  }
  const writer = openPinnedMaps(bpffs);
  const caps = writer.capacities();
  o.log('info', 'pinned maps opened', { services: caps.services, backends: caps.backends, policy: caps.policy });
  const server0 = kc.getCurrentCluster()?.server ?? 'in-cluster';
  const agent = new Agent({
    writer,
    nodeName: o.nodeName,
    log: o.log,
    kinds: Informers.KINDS,
    ...(o.minSyncIntervalMs !== undefined && { minSyncIntervalMs: o.minSyncIntervalMs }),
    names: { write: (n) => writeNames(host, n), source: `agent on ${o.nodeName} (${server0})` },
    // called after a sync, never before the next line has run
    flushUdp: (backends) => void ctGc.flush(backends),
  });
  // a child process each run (the loader's ct-gc): the walk never holds the event loop
  const ctGc = new CtGc((backends) => loader.ctGc(host, backends), { intervalMs: (o.ctGcIntervalS ?? CT_GC_INTERVAL_S) * 1000, log: o.log, metrics: agent.metrics });
  let server: Server | undefined;
  const informers = new Informers(kc, agent);
  try {
    server = await serveEndpoints(o.listen, {
      ready: () => agent.ready(),
      notReadyReason: () => agent.notReadyReason(),
      degraded: () => agent.degraded(),
      metrics: async () => agent.metrics.render(agent.ready()) + (await datapathMetrics(host)),
      latency: (since) => agent.metrics.latencySince(since),
    });
    o.log('info', 'endpoints listening: /healthz /readyz /metrics', { listen: listening(server), node: o.nodeName, server: kc.getCurrentCluster()?.server });
    o.onListening?.(listening(server));
    informers.start();
    ctGc.start();
    void agent.firstSync().then((ok) => {
      // The lists and the first full sync leave a heap sized for their peak (~3× what is then
      // live at 10k Services); from here V8 sizes it for memory, not speed: the next GCs shrink
      // it (RSS at 10k Services, README: Agent). Not before: it doubles the initial sync's time.
      if (ok) setFlagsFromString('--optimize-for-size');
    });
    const why = await o.stop;
    o.log('info', `${why}: stopping; the datapath stays in place and keeps serving${o.removeOnExit ? ' until --remove-on-exit removes it' : ''}`);
  } finally {
    await informers.stop();
    await agent.close();
    await ctGc.close();
    await writer.close();
    if (server) {
      // keep-alive connections (a scraper's) must not hold a stopping agent
      server.closeAllConnections();
      await new Promise((res) => server!.close(res));
    }
  }
  if (o.removeOnExit) {
    await loader.remove(host);
    await removeNames(host);
    o.log('info', 'datapath removed (--remove-on-exit)');
  }
  return ExitCode.ok;
}

/** The datapath's own families, as `datapath metrics` prints them; a comment when they cannot be read. */
async function datapathMetrics(host: LocalHost): Promise<string> {
  try {
    return await loader.metrics(host);
  } catch (err) {
    const msg = err instanceof PrepNodeError ? err.message : String(err);
    return `# the datapath's metrics could not be read: ${msg.split('\n')[0]}\n`;
  }
}
