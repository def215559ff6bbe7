// From a target to a connected Host: `local` runs here, anything else goes over SSH.
import type { Host } from './host.js';
import { LocalHost } from './local.js';
import { SshHost, type SshOptions } from './ssh.js';
import type { Target } from './target.js';

export type ConnectOptions = SshOptions & {
  /** Default port when the target names none, like `ssh -p`. */
  port?: number;
};

/** Open a Host for a target; connection failures throw a one-line HostError. */
export async function openHost(target: Target, options: ConnectOptions = {}): Promise<Host> {
  if (target.local) return new LocalHost(target.spec);
  const port = target.port ?? options.port;
  const conn = target.identityFile ? { ...options, identityFiles: [target.identityFile, ...(options.identityFiles ?? [])] } : options;
  return SshHost.connect(target.spec, target.host, { ...(target.user && { user: target.user }), ...(port && { port }) }, conn);
}
