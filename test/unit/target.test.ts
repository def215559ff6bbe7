import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTarget } from '../../src/host/target.js';
import { UsageError } from '../../src/errors.js';

test('target forms', () => {
  assert.deepEqual(parseTarget('node1'), { spec: 'node1', local: false, host: 'node1' });
  assert.deepEqual(parseTarget('root@node1'), { spec: 'root@node1', local: false, host: 'node1', user: 'root' });
  assert.deepEqual(parseTarget('admin@10.0.0.5:2222'), { spec: 'admin@10.0.0.5:2222', local: false, host: '10.0.0.5', user: 'admin', port: 2222 });
  assert.deepEqual(parseTarget('[::1]:22'), { spec: '[::1]:22', local: false, host: '::1', port: 22 });
  assert.deepEqual(parseTarget('deploy@[fe80::1%eth0]:2200'), { spec: 'deploy@[fe80::1%eth0]:2200', local: false, host: 'fe80::1%eth0', user: 'deploy', port: 2200 });
  assert.deepEqual(parseTarget('2001:db8::5'), { spec: '2001:db8::5', local: false, host: '2001:db8::5' });
  assert.equal(parseTarget('local').local, true);
});

test('bad targets are usage errors that show the expected form', () => {
  for (const bad of ['', 'host:0', 'host:99999', 'host:ssh', 'us er@host', '[::1', '[::1]x', 'a b']) {
    assert.throws(() => parseTarget(bad), (e: unknown) => e instanceof UsageError && /expected \[user@\]host\[:port\]/.test(e.message), bad);
  }
});
