// Issue 17: control characters from a manifest or the node never reach the terminal raw in `datapath
// sync`, `status` and `observe` output. A clusterIP of `\e]0;owned\a\e[2J` (retitle, clear the screen),
// a Service name, a label value and a policy name carrying escape sequences are printed as \u{…}.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostLines } from '../../src/commands/datapath.js';
import { loadDesired } from '../../src/datapath/k8s/index.js';
import { formatLeftOut } from '../../src/datapath/k8s/findings.js';
import { formatFlow, type Flow } from '../../src/datapath/observe.js';

const EVIL = '\x1b]0;owned\x07\x1b[2J\x9b31m\u202e';
// eslint-disable-next-line no-control-regex
const RAW = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]/; // a newline between lines is allowed, a tab is not written here

test('datapath sync: a clusterIP and a Service name with escape sequences are printed as text', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pn-dp-ctl-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'evil.yaml');
  // YAML double-quoted "\e" and "\a" are ESC and BEL.
  writeFileSync(
    file,
    'apiVersion: v1\nkind: Service\nmetadata:\n  name: "web\\e]0;owned\\a"\n  namespace: default\n' +
      'spec:\n  clusterIP: "\\e]0;owned\\a\\e[2J"\n  selector:\n    app: web\n  ports:\n  - port: 80\n',
  );
  const d = await loadDesired(file, { allowPartial: true });
  assert.equal(d.leftOut.length, 1);
  const raw = formatLeftOut(d.leftOut[0]!);
  assert.match(raw, RAW, 'the finding itself carries the raw value (the test would pass vacuously otherwise)');
  // the lines as `work` builds them for sync --allow-partial
  const out = hostLines(`node\x1b[2J`, ['synced: 0 put, 0 deleted, 0 cleared', `  left out (--allow-partial), 1:`, `    ${raw}`]);
  assert.doesNotMatch(out, RAW, out);
  assert.equal(out.split('\n').length, 4, 'three lines and the final newline: line breaks between lines kept');
  assert.ok(out.startsWith('node\\u{001b}[2J: synced'), out);
  assert.ok(out.includes('spec.clusterIP: this Service is left out: its VIPs are not load-balanced ("\\u{001b}]0;owned\\u{0007}\\u{001b}[2J"'), out);
});

test('datapath status: a line with a newline or escape inside stays one printed line', () => {
  const out = hostLines('n', ['installed (kernel 6.1.0\x1b]0;x\x07)', `  map${EVIL}\nFAKE LINE`]);
  assert.doesNotMatch(out, RAW);
  assert.equal(out.split('\n').length, 3);
  assert.ok(out.includes('map\\u{001b}]0;owned\\u{0007}\\u{001b}[2J\\u{009b}31m\\u{202e}\\u{000a}FAKE LINE'), out);
});

test('datapath observe: labels, endpoint, service and policy names with escape sequences are printed as text', () => {
  const flow: Flow = {
    time: '2026-12-03T10:00:00Z',
    verdict: 'dropped',
    reason: { code: 3, name: 'POLICY_DENIED', description: 'denied by a policy' },
    hook: 'tc_ingress',
    ifname: `eth0${EVIL}`,
    family: 'ipv4',
    proto: 'TCP',
    direction: 'ingress',
    source: { ip: '198.18.0.2', port: 40000, endpoint: `default/pod${EVIL}`, labels: { app: `x${EVIL}` } },
    destination: { ip: '198.18.0.3', port: 80 },
    service: `default/web${EVIL}`,
    policy: { policy: `default/deny${EVIL}`, rule: `ingress[0]${EVIL}` },
    len: 60,
  };
  const line = formatFlow(flow);
  assert.doesNotMatch(line, RAW, line);
  assert.doesNotMatch(line, /\n/);
  assert.ok(line.includes('[app=x\\u{001b}]0;owned\\u{0007}\\u{001b}[2J\\u{009b}31m\\u{202e}]'), line);
  assert.ok(line.includes('service default/web\\u{001b}'), line);
});
