// The single executable (`make sea`) and the OCI image made from it (`make image`), built for a test
// when missing or older than what they are made from.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { REPO } from './vm.js';

/** Build the single executable when it is missing or older than the compiled CLI (about 30 s). */
export function ensureSea(): void {
  const exe = join(REPO, 'dist/sea/prep-node');
  if (existsSync(join(REPO, 'dist/sea/SHA256SUMS')) && statSync(exe).mtimeMs >= statSync(join(REPO, 'dist/src/cli.js')).mtimeMs) return;
  const r = spawnSync('scripts/build-sea.sh', { cwd: REPO, encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, `make sea: ${r.stderr}`);
}

/** The package's version: the image's tag. */
export const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
/** What `make image` writes. */
export const IMAGE_ARCHIVE = join(REPO, `dist/image/prep-node-agent-${VERSION}.oci.tar`);

/** Build the OCI image when it is missing or older than the single executable (14 s with the base
 *  cached, about 3 minutes the first time: debootstrap). */
export function ensureImage(): void {
  ensureSea();
  if (existsSync(IMAGE_ARCHIVE) && statSync(IMAGE_ARCHIVE).mtimeMs >= statSync(join(REPO, 'dist/sea/prep-node')).mtimeMs) return;
  const r = spawnSync('scripts/build-image.sh', { cwd: REPO, encoding: 'utf8', timeout: 900_000 });
  assert.equal(r.status, 0, `make image: ${r.stderr}`);
}
