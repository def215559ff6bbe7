// /healthz, /readyz and /metrics on 127.0.0.1 by default (`--listen ADDR:PORT` for another address).
// healthz: the process is alive and its loop turns; readyz: every informer has listed, the last sync
// wrote everything, the maps are writable (503 with the reason otherwise); metrics: the agent's own
// families, then the datapath's (the same renderer as `datapath metrics`); latency: the exact
// event → map latencies of the last 131072 changes as JSON (`?since=N`: those after the first N).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { UsageError } from '../errors.js';

export interface Endpoints {
  ready(): boolean;
  notReadyReason(): string;
  /** said after "ok" on /readyz while ready but degraded ('' when nothing) */
  degraded?(): string;
  metrics(): Promise<string>;
  /** the exact event → map latencies observed after the first `since` (JSON for /latency) */
  latency?(since: number): unknown;
}

/** Parse `ADDR:PORT` (`[v6]:PORT` for IPv6); PORT 0 picks a free one. */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || port > 65535) throw new UsageError(`--listen ${text}: expected ADDRESS:PORT, e.g. 127.0.0.1:10260 or [::1]:10260`);
  return { host: (m[1] ?? m[2])!, port };
}

/** Serve the endpoints; resolves once listening. */
export async function serveEndpoints(listen: { host: string; port: number }, e: Endpoints): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const text = (code: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(code, { 'content-type': type });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return text(405, 'only GET\n');
    if (path === '/healthz') return text(200, 'ok\n');
    if (path === '/readyz') {
      if (!e.ready()) return text(503, `not ready: ${e.notReadyReason()}\n`);
      const note = e.degraded?.() ?? '';
      return text(200, note ? `ok: ${note}\n` : 'ok\n');
    }
    if (path === '/metrics')
      return void e.metrics().then(
        (m) => text(200, m, 'text/plain; version=0.0.4; charset=utf-8'),
        (err: Error) => text(500, `metrics: ${err.message}\n`),
      );
    if (path === '/latency' && e.latency) {
      // ?since=N: the observations after the first N; without it, only the count to ask from
      const since = /[?&]since=(\d{1,15})(?:&|$)/.exec(req.url ?? '')?.[1];
      return text(200, `${JSON.stringify(e.latency(since === undefined ? Number.MAX_SAFE_INTEGER : Number(since)))}\n`, 'application/json');
    }
    text(404, 'not found: /healthz, /readyz, /metrics, /latency\n');
  });
  await new Promise<void>((res, rej) => {
    server.once('error', (err: NodeJS.ErrnoException) => rej(new UsageError(`--listen ${listen.host}:${listen.port}: ${err.code ?? err.message}`, { cause: err })));
    server.listen(listen.port, listen.host, () => res());
  });
  return server;
}

/** The address a server listens on, as ADDR:PORT. */
export function listening(server: Server): string {
  const a = server.address() as AddressInfo;
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}
