import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runChecks, validateIgnore } from '../../src/checks/runner.js';
import type { Check } from '../../src/checks/types.js';
import { HostError, UsageError } from '../../src/errors.js';
import { fixtureContext } from '../helpers/fixture-host.js';

const check = (id: string, status: 'pass' | 'fail', requires?: string[]): Check => ({
  id,
  title: id,
  ...(requires && { requires }),
  run: () => Promise.resolve({ status, observed: 'o', expected: 'e' }),
});

test('a check whose prerequisite failed is skipped, naming it', async () => {
  const results = await runChecks(await fixtureContext({}), [check('a.parent', 'fail'), check('a.child', 'pass', ['a.parent'])]);
  assert.equal(results[1]!.status, 'skip');
  assert.match(results[1]!.detail!, /a\.parent is fail/);
});

test('a check that throws is an error with the reason; a HostError ends the host', async () => {
  const boom: Check = { id: 'x.boom', title: 'boom', run: (ctx) => ctx.host.exec('no-such-command').then(() => ({ status: 'pass', observed: '', expected: '' })) };
  const [r] = await runChecks(await fixtureContext({}), [boom]);
  assert.equal(r!.status, 'error');
  assert.match(r!.detail!, /could not check: .*no-such-command/);
  const lost: Check = { id: 'x.lost', title: 'lost', run: () => Promise.reject(new HostError('h', 'disconnected', 'gone')) };
  await assert.rejects(runChecks(await fixtureContext({}), [lost]), HostError);
});

test('--ignore marks results ignored; unknown ids are a usage error', async () => {
  const checks = [check('a.one', 'fail'), check('a.two', 'fail')];
  const results = await runChecks(await fixtureContext({}), checks, { ignore: ['a.two'] });
  assert.deepEqual(results.map((r) => r.ignored), [false, true]);
  const all = await runChecks(await fixtureContext({}), checks, { ignore: ['all'] });
  assert.ok(all.every((r) => r.ignored));
  assert.throws(() => validateIgnore(checks, ['a.three']), (e: unknown) => e instanceof UsageError && /unknown check "a\.three"/.test(e.message));
  validateIgnore(checks, ['all', 'a.one']);
});

test('concurrent: checks start together, a prerequisite is awaited, results keep catalogue order', async () => {
  const log: string[] = [];
  const slow = (id: string, status: 'pass' | 'fail', ms: number, requires?: string[]): Check => ({
    id,
    title: id,
    ...(requires && { requires }),
    run: async () => {
      log.push(`start ${id}`);
      await new Promise((r) => setTimeout(r, ms));
      log.push(`end ${id}`);
      return { status, observed: 'o', expected: 'e' };
    },
  });
  const checks = [slow('a.parent', 'fail', 50), slow('a.child', 'pass', 1, ['a.parent']), slow('b.other', 'pass', 1), slow('c.later', 'pass', 1, ['z.missing'])];
  const order: string[] = [];
  const results = await runChecks(await fixtureContext({}), checks, { concurrent: true, onResult: (r) => order.push(r.id) });
  assert.deepEqual(order, ['a.parent', 'a.child', 'b.other', 'c.later']);
  assert.deepEqual(results.map((r) => r.status), ['fail', 'skip', 'pass', 'skip']);
  assert.match(results[1]!.detail!, /a\.parent is fail/);
  assert.match(results[3]!.detail!, /z\.missing is missing/);
  // b.other ran while a.parent was still running; a.child never ran.
  assert.ok(log.indexOf('end b.other') < log.indexOf('end a.parent'));
  assert.ok(!log.includes('start a.child'));
  const lost: Check = { id: 'x.lost', title: 'lost', run: () => Promise.reject(new HostError('h', 'disconnected', 'gone')) };
  await assert.rejects(runChecks(await fixtureContext({}), [check('a.one', 'pass'), lost, check('a.two', 'pass')], { concurrent: true }), HostError);
});
