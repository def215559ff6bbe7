// One mode's network: three namespaces joined by veth pairs, the node forwarding between them.
//
//   client ns  c0 10.255.0.2/24 ──veth── n0 10.255.0.1/24  node ns  10.254.0.1/24 n1 ──veth── b0 10.254.0.2/24  backend ns
//              default via 10.255.0.1                     ip_forward=1                        default via 10.254.0.1
//                                                         10.128.0.0/12 via 10.254.0.2         local 10.128.0.0/12 dev lo
//                                                                                              listener 0.0.0.0:8080
//
// Every endpoint address (10.128.0.0/12) is local to the backend namespace, so one listener answers
// all of them. A service VIP (10.96.0.0/12) is routed nowhere: a connection to it succeeds only when
// the mode under test translated it (sock_lb in the client's connect(), tc_lb on n0, or the node's
// nat table), so every counted connection went through the datapath being measured.
import { spawn } from 'node:child_process';
import { must, track } from './exec.js';
import type { BenchEnv } from './env.js';

export const CLIENT_ADDR = '10.255.0.2';
export const NODE_CLIENT_SIDE = '10.255.0.1';
export const NODE_BACKEND_SIDE = '10.254.0.1';
export const BACKEND_ADDR = '10.254.0.2';

export interface Topology {
  client: string;
  node: string;
  backend: string;
  /** /run/netns/<name> paths */
  path: { client: string; node: string; backend: string };
}

export async function createTopology(env: BenchEnv, mode: string, benchBin: string): Promise<Topology> {
  const t: Topology = {
    client: env.netns(`${mode}-c`),
    node: env.netns(`${mode}-n`),
    backend: env.netns(`${mode}-b`),
    path: { client: '', node: '', backend: '' },
  };
  t.path = { client: `/run/netns/${t.client}`, node: `/run/netns/${t.node}`, backend: `/run/netns/${t.backend}` };
  for (const n of [t.client, t.node, t.backend]) {
    await must('ip', ['netns', 'add', n]);
    await must('ip', ['-n', n, 'link', 'set', 'lo', 'up']);
  }
  const ip = (ns: string, ...args: string[]) => must('ip', ['-n', ns, ...args]);
  await ip(t.client, 'link', 'add', 'c0', 'type', 'veth', 'peer', 'name', 'n0', 'netns', t.node);
  await ip(t.backend, 'link', 'add', 'b0', 'type', 'veth', 'peer', 'name', 'n1', 'netns', t.node);
  await ip(t.client, 'addr', 'add', `${CLIENT_ADDR}/24`, 'dev', 'c0');
  await ip(t.client, 'link', 'set', 'c0', 'up');
  await ip(t.client, 'route', 'add', 'default', 'via', NODE_CLIENT_SIDE);
  await ip(t.node, 'addr', 'add', `${NODE_CLIENT_SIDE}/24`, 'dev', 'n0');
  await ip(t.node, 'addr', 'add', `${NODE_BACKEND_SIDE}/24`, 'dev', 'n1');
  await ip(t.node, 'link', 'set', 'n0', 'up');
  await ip(t.node, 'link', 'set', 'n1', 'up');
  await ip(t.node, 'route', 'add', '10.128.0.0/12', 'via', BACKEND_ADDR);
  await ip(t.backend, 'addr', 'add', `${BACKEND_ADDR}/24`, 'dev', 'b0');
  await ip(t.backend, 'link', 'set', 'b0', 'up');
  await ip(t.backend, 'route', 'add', 'default', 'via', NODE_BACKEND_SIDE);
  await ip(t.backend, 'route', 'add', 'local', '10.128.0.0/12', 'dev', 'lo');
  const sysctl = (ns: string, ...kv: string[]) => must(benchBin, ['exec', '--netns', `/run/netns/${ns}`, '--', 'sysctl', '-qw', ...kv]);
  await sysctl(t.node, 'net.ipv4.ip_forward=1');
  // the client: all ports (RST closes leave no TIME_WAIT, but a wide range never hurts), and an
  // unanswered SYN gives up after 1+2+4 s instead of two minutes
  await sysctl(t.client, 'net.ipv4.ip_local_port_range=1024 65535', 'net.ipv4.tcp_syn_retries=2');
  await startServer(t, benchBin);
  return t;
}

/** The backend's listener; resolves once it is bound. It dies with the bench (PR_SET_PDEATHSIG). */
async function startServer(t: Topology, benchBin: string): Promise<void> {
  const child = track(spawn(benchBin, ['serve', '--netns', t.path.backend, '--port', '8080'], { stdio: ['ignore', 'pipe', 'pipe'] }));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('"listening"')) resolve();
      else if (out.includes('"error"')) reject(new Error(`backend listener: ${out.trim()}`));
    });
    child.once('exit', (code) => reject(new Error(`backend listener exited ${code}: ${out.trim()}`)));
  });
}
