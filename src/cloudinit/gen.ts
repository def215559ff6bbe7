// `node dist/src/cloudinit/gen.js`: rewrite cloud-init/<profile>.yaml for every built-in profile and
// remove the files of profiles that are no longer built in. Prints what changed.
import { readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DOCS_DIR, builtinDocs } from './docs.js';

const docs = await builtinDocs();
for (const [file, text] of docs) {
  const path = join(DOCS_DIR, file);
  let old: string | null = null;
  try {
    old = readFileSync(path, 'utf8');
  } catch {
    // a new profile
  }
  if (old === text) continue;
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
  process.stdout.write(`${old === null ? 'created' : 'updated'} cloud-init/${file}\n`);
}
for (const file of readdirSync(DOCS_DIR)) {
  if (file.endsWith('.yaml') && !docs.has(file)) {
    rmSync(join(DOCS_DIR, file));
    process.stdout.write(`removed cloud-init/${file} (no such built-in profile)\n`);
  }
}
