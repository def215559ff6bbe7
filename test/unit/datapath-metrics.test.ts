// metrics: the one renderer is the loader's `metrics` command (bpf/loader/metrics.c). Here, without
// root: the built loader on a directory that is not a bpffs (not installed: `up 0` and nothing else,
// byte for byte), its refusal of bad arguments, what it says about names index files it cannot use
// (read before anything else, so it shows without an install), the textfile writer script, and the
// strict exposition parser the kernel tests judge the real output with (a test that cannot fail is
// not a test). The installed output, pinned family by family, is in test/kernel/dp-loader.test.ts
// and test/kernel/datapath-k8s.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { escapeLabel, textfileScript } from '../../src/datapath/metrics.js';
import { NAMES_PATH } from '../../src/datapath/observe.js';
import { parsePrometheusText } from '../helpers/prometheus-text.js';
import { DATAPATH_FAMILIES } from '../helpers/datapath-families.js';

const DP = fileURLToPath(new URL('../../../bpf/build/prep-node-dp', import.meta.url));

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'pn-metrics-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The loader's metrics with --bpffs pointing at a plain directory: never installed. */
function metrics(dir: string, args: string[] = []) {
  return spawnSync(DP, ['--bpffs', dir, 'metrics', ...args], { encoding: 'utf8' });
}

test('not installed: only up 0, exactly as the family table says', () => {
  withDir((dir) => {
    const r = metrics(dir);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const up = DATAPATH_FAMILIES[0]!;
    assert.equal(r.stdout, `# HELP ${up.name} ${up.help}\n# TYPE ${up.name} ${up.type}\n${up.name} 0\n`);
    assert.equal(r.stderr, '');
    assert.equal(parsePrometheusText(r.stdout).get('prep_node_datapath_up')!.samples[0]!.value, 0);
  });
});

test('a bad argument is a usage error (exit 2, one JSON line), no half exposition', () => {
  withDir((dir) => {
    for (const args of [['--bogus'], ['--names']]) {
      const r = metrics(dir, args);
      assert.equal(r.status, 2, JSON.stringify(args));
      assert.deepEqual(Object.keys(JSON.parse(r.stdout) as object), ['error', 'code']);
      assert.doesNotMatch(r.stdout, /# HELP/);
    }
  });
});

test('a names index it cannot use costs the names only: one line on stderr, the metrics still printed, exit 0', () => {
  withDir((dir) => {
    const file = join(dir, 'names.json');
    const cases: [string, string | null, RegExp | null][] = [
      ['valid', '{"version":1,"synced_at":"x","source":"s","services":{"7":{"name":"ns/a\\"b\\\\c\\u00e9\\ud83d\\ude42","vip":"198.18.0.1","port":80,"protocol":"tcp"}},"rules":{},"endpoints":{},"identities":{},"cidrs":{}}\n', null],
      ['empty services, nested values skipped', '{"endpoints":{"1.2.3.4":{"labels":{"a":"b"},"x":[1,-2.5e3,true,null,[{}]]}},"services":{},"version":1}', null],
      ['missing file', null, null],
      ['truncated JSON', '{"version":1,"services":{"7":{"name":"x"}', /no service names from .*names\.json: not a version-1 names index/],
      ['version 2', '{"version":2,"services":{}}', /not a version-1 names index/],
      ['no version', '{"services":{}}', /not a version-1 names index/],
      ['services not an object', '{"version":1,"services":[]}', /not a version-1 names index/],
      ['a raw control character in a string', '{"version":1,"services":{"7":{"name":"a\tb"}}}', /not a version-1 names index/],
      ['a bad escape', '{"version":1,"services":{"7":{"name":"a\\qb"}}}', /not a version-1 names index/],
      ['trailing garbage', '{"version":1,"services":{}} x', /not a version-1 names index/],
      ['nested past 64 levels', `{"version":1,"x":${'['.repeat(100)}${']'.repeat(100)},"services":{}}`, /not a version-1 names index/],
    ];
    for (const [what, text, warn] of cases) {
      rmSync(file, { force: true });
      if (text !== null) writeFileSync(file, text);
      const r = metrics(dir, ['--names', file]);
      assert.equal(r.status, 0, `${what}: ${r.stdout}`);
      assert.match(r.stdout, /^prep_node_datapath_up 0$/m, what);
      if (warn) {
        assert.match(r.stderr, warn, what);
        assert.equal(r.stderr.trim().split('\n').length, 1, what);
      } else assert.equal(r.stderr, '', what);
    }
    // larger than 64 MiB (sparse: nothing is written), a directory, a symlink: refused before reading
    writeFileSync(file, '');
    truncateSync(file, 65 * 1024 * 1024);
    assert.match(metrics(dir, ['--names', file]).stderr, /larger than 64 MiB/);
    assert.match(metrics(dir, ['--names', dir]).stderr, /no service names from .*: Invalid argument/);
    symlinkSync(file, join(dir, 'link.json'));
    assert.match(metrics(dir, ['--names', join(dir, 'link.json')]).stderr, /no service names from .*link\.json: Too many levels of symbolic links/);
  });
});

test('escapeLabel escapes what the exposition format wants escaped (the agent\'s own families)', () => {
  assert.equal(escapeLabel('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
});

test('the writer script is valid sh, runs the loader\'s metrics with the names index and writes through a temporary file', () => {
  const s = textfileScript({ bin: '/var/lib/prep-node/bin/prep-node-dp-abc', dir: "/var/lib/node_exporter/text file's", intervalSeconds: 15 });
  assert.equal(spawnSync('sh', ['-n'], { input: s }).status, 0);
  assert.match(s, /"\$DP" metrics --names \/var\/lib\/prep-node\/datapath\/names\.json >"\$tmp"/);
  assert.ok(s.includes(NAMES_PATH));
  assert.match(s, /mv -f "\$tmp" "\$OUT"/);
  assert.match(s, /^DIR='\/var\/lib\/node_exporter\/text file'\\''s'$/m);
  assert.doesNotMatch(s, /\bawk\b/, 'no second renderer on the node');
});

test('the strict parser refuses malformed expositions', () => {
  const bad = [
    'x 1\n', // sample before TYPE
    '# TYPE x counter\nx -1\n', // negative counter
    '# TYPE x gauge\nx{a="b} 1\n', // unterminated label value
    '# TYPE x gauge\nx{a="\\t"} 1\n', // bad escape
    '# TYPE x gauge\nx 1\nx 2\n', // duplicate series
    '# TYPE x gauge\n# TYPE y gauge\nx 1\ny 1\nx{a="b"} 2\n', // family not contiguous
    '# TYPE x gauge\nx one\n', // bad value
    '# TYPE x gauge\n# TYPE x gauge\n', // second TYPE
    '# TYPE 1x gauge\n', // bad name
    '# TYPE x gauge\nx 1', // no final newline
  ];
  for (const b of bad) assert.throws(() => parsePrometheusText(b), Error, JSON.stringify(b));
  assert.equal(parsePrometheusText('# HELP x a \\\\ b\n# TYPE x gauge\nx{a="\\"q\\""} 1.5e3 1700000000\n').get('x')!.samples[0]!.value, 1500);
});
