// The single executable (Node's SEA, built by `make sea`): the agent for nodes without Node.js. Files the
// package keeps beside dist/ (the loader, koffi's native module) sit beside the executable instead, in
// the directory `prep-node agent install` creates root's and writable by root only.
import { dirname, join } from 'node:path';

interface SeaModule {
  isSea(): boolean;
  getAsset(key: string, encoding: string): string;
}

// node:sea is there from Node 20.12 (process.getBuiltinModule from 20.16); before, nothing is a SEA
const sea = (process as { getBuiltinModule?: (id: string) => object | undefined }).getBuiltinModule?.('node:sea') as SeaModule | undefined;

/** The directory holding the single executable, or null when running from the package. */
export function seaDir(): string | null {
  return sea?.isSea() ? dirname(process.execPath) : null;
}

/** A file beside the single executable; `fromPackage` when running from the package. */
export function besideSea(name: string, fromPackage: string): string {
  const dir = seaDir();
  return dir === null ? fromPackage : join(dir, name);
}

/** An asset the SEA blob carries (sea-config.json `assets`), or null when running from the package. */
export function seaAsset(key: string): string | null {
  return sea?.isSea() ? sea.getAsset(key, 'utf8') : null;
}
