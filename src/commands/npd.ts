// `prep-node npd --out DIR`: what keeps prep-node's checks reporting after bootstrap, where cluster
// operators look: a node-problem-detector custom plugin monitor (NodeConditions), the POSIX sh
// plugin it runs, and systemd units that refresh a node-feature-discovery feature file (labels).
import { randomBytes } from 'node:crypto';
import { readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import { DEFAULT_INTERVAL, DEFAULT_PLUGIN_PATH, goDurationMs, monitorConfig, nfdUnits } from '../npd/monitor.js';
import type { Io } from './check.js';

export interface NpdOptions {
  /** existing directory the files are written to */
  out?: string;
  /** where the plugin script will be on the node (default /etc/node-problem-detector.d/plugin/…) */
  pluginPath?: string;
  /** NPD's invoke_interval, a Go duration (default 60s) */
  interval?: string;
}

/** The plugin script as shipped in the package. */
export const PLUGIN_SCRIPT = new URL('../../../deploy/node/prep-node-check.sh', import.meta.url);

export async function npd(options: NpdOptions, io: Io): Promise<number> {
  const out = options.out;
  if (out === undefined) throw new UsageError('npd: --out DIR is required (an existing directory for the four files)');
  const pluginPath = options.pluginPath ?? DEFAULT_PLUGIN_PATH;
  if (!pluginPath.startsWith('/') || /[\s"'\\$`]/.test(pluginPath)) {
    throw new UsageError(`npd: --plugin-path ${JSON.stringify(pluginPath)} must be an absolute path without spaces, quotes, $, \` or \\`);
  }
  const interval = options.interval ?? DEFAULT_INTERVAL;
  const ms = goDurationMs(interval);
  if (ms === undefined || ms < 10_000) throw new UsageError(`npd: --interval ${JSON.stringify(interval)} must be a Go duration of at least 10s (e.g. 60s, 5m)`);
  const st = await stat(out).catch(() => undefined);
  if (!st?.isDirectory()) throw new UsageError(`npd: --out ${out} is not a directory: create it first`);

  const script = await readFile(PLUGIN_SCRIPT, 'utf8');
  const units = nfdUnits(pluginPath);
  const files: [string, string, number][] = [
    ['prep-node-monitor.json', `${JSON.stringify(monitorConfig({ pluginPath, interval }), null, 2)}\n`, 0o644],
    ['prep-node-check.sh', script, 0o755],
    ['prep-node-nfd.service', units.service, 0o644],
    ['prep-node-nfd.timer', units.timer, 0o644],
  ];
  for (const [name, text, mode] of files) await writeAtomically(join(out, name), text, mode);
  io.stdout.write(`${files.map(([name]) => join(out, name)).join('\n')}\n`);
  return 0;
}

async function writeAtomically(file: string, text: string, mode: number): Promise<void> {
  const tmp = `${file}.prep-node-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(tmp, text, { flag: 'wx', mode });
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new UsageError(`npd: cannot write ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`, { cause: err });
  }
}
