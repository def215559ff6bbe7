// `prep-node profiles list|show NAME`: the built-in profiles, and any profile resolved (extends merged).
import { stringify } from 'yaml';
import { builtinProfiles, loadProfile } from '../profiles/load.js';
import type { Io } from './check.js';

export async function listProfiles(io: Io): Promise<void> {
  const names = await builtinProfiles();
  const width = Math.max(...names.map((n) => n.length));
  for (const name of names) io.stdout.write(`${name.padEnd(width)}  ${(await loadProfile(name)).description}\n`);
}

/** Print a profile as YAML, with everything it inherits and every default filled in. */
export async function showProfile(nameOrPath: string, io: Io): Promise<void> {
  io.stdout.write(stringify(await loadProfile(nameOrPath)));
}
