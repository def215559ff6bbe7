// Issue 17 item 6: the loader binary runs as root, so the directory it lives in, that directory's
// parent and the binary itself must be root's and writable by root only before prep-node runs it;
// otherwise another account could swap the binary between the sha256 check and the run. Real root,
// a real LocalHost and the real loader, in a directory this test creates (standing in for
// /var/lib/prep-node) and removes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalHost } from '../../src/host/local.js';
import { ensureLoader, LOCAL_LOADER } from '../../src/datapath/loader.js';
import { ExitCode, PrepNodeError } from '../../src/errors.js';

const notRoot = process.getuid?.() !== 0 ? 'needs root (chown to another account)' : false;
const NOBODY = 65534;

function tree(): { root: string; bin: string } {
  const root = mkdtempSync(join(tmpdir(), 'pn-ldr-'));
  chmodSync(root, 0o755);
  const bin = join(root, 'bin');
  mkdirSync(bin, { mode: 0o755 });
  return { root, bin };
}

async function refusal(binDir: string): Promise<PrepNodeError> {
  const err = await ensureLoader(new LocalHost(), LOCAL_LOADER, binDir).then(
    () => assert.fail('the loader directory was trusted'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof PrepNodeError, String(err));
  assert.equal(err.exitCode, ExitCode.refused);
  return err;
}

test('a loader directory owned by another account is refused before anything runs from it', { skip: notRoot }, async () => {
  const { root, bin } = tree();
  try {
    chownSync(bin, NOBODY, NOBODY);
    const err = await refusal(bin);
    assert.match(err.message, new RegExp(`${bin} is owned by uid 65534 with mode 755: the datapath loader runs from there as root`));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a parent directory writable by others (not sticky), or a binary another account owns, is refused; a sticky one of root\'s is not', { skip: notRoot }, async () => {
  const { root, bin } = tree();
  try {
    chmodSync(root, 0o777);
    assert.match((await refusal(bin)).message, /with mode 777: .*chmod go-w/);
    chmodSync(root, 0o1777); // sticky and root's, as /tmp: others cannot replace root's bin/
    const path = await ensureLoader(new LocalHost(), LOCAL_LOADER, bin); // trusted: uploads
    assert.ok(path.startsWith(`${bin}/prep-node-dp-`));
    chownSync(path, NOBODY, NOBODY);
    assert.match((await refusal(bin)).message, /prep-node-dp-[0-9a-f]{12} is owned by uid 65534/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
