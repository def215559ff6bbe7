// `prep-node cloud-init --profile P [--output FILE]`: the profile as a #cloud-config user-data
// document (src/cloudinit/emit.ts), on stdout or written atomically to FILE (a reader never sees half
// a document: it is written beside FILE and renamed over it).
import { randomBytes } from 'node:crypto';
import { rename, rm, writeFile } from 'node:fs/promises';
import { emitCloudConfig } from '../cloudinit/emit.js';
import { UsageError } from '../errors.js';
import { DEFAULT_PROFILE, loadProfile } from '../profiles/load.js';
import type { Io } from './check.js';

export interface CloudInitOptions {
  /** Built-in profile name or a profile file (default k8s-worker). */
  profile?: string;
  /** Write here instead of stdout; `-` means stdout. */
  output?: string;
}

export async function cloudInit(options: CloudInitOptions, io: Io): Promise<number> {
  const spec = options.profile ?? DEFAULT_PROFILE;
  const profile = await loadProfile(spec);
  const text = emitCloudConfig(profile, { version: io.version, source: spec });
  if (options.output === undefined || options.output === '-') {
    io.stdout.write(text);
    return 0;
  }
  await writeAtomically(options.output, text);
  return 0;
}

async function writeAtomically(file: string, text: string): Promise<void> {
  const tmp = `${file}.prep-node-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(tmp, text, { flag: 'wx', mode: 0o644 });
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR' || code === 'ENOTDIR' || code === 'EROFS' || code === 'EPERM') {
      throw new UsageError(`--output ${file}: cannot write (${code})`);
    }
    throw err;
  }
}
