// A known_hosts pattern crafted to backtrack (`*a*a*a…b`): matching must stay polynomial. The old
// matcher built a regular expression of `.*` runs and took 22 s for 20 stars against a 40-character
// name, doubling with each star; at 40 stars and 80 characters it would not finish in a lifetime.
// The timeout below is not a speed figure: a correct matcher ends in milliseconds, the old one never.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { globMatch, patternsMatch } from '../../src/host/known-hosts.js';

test('a 40-star backtracking pattern against an 80-character name ends (and does not match)', { timeout: 30_000 }, () => {
  const pattern = `${'*a'.repeat(40)}b`;
  const name = 'a'.repeat(80);
  assert.equal(patternsMatch(pattern, name), false);
  assert.equal(patternsMatch(`${'*a'.repeat(40)}`, name), true);
});

test('the matcher agrees with a regular expression on every pattern over {a, b, *, ?} up to 5 long', () => {
  const alphabet = ['a', 'b', '*', '?'];
  const patterns: string[] = [''];
  for (let len = 1; len <= 5; len++) for (const p of patterns.filter((x) => x.length === len - 1)) for (const c of alphabet) patterns.push(p + c);
  const names = ['', 'a', 'b', 'ab', 'ba', 'aab', 'abab', 'bbbba', 'aaaaab'];
  let compared = 0;
  for (const p of patterns) {
    const re = new RegExp(`^${p.replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
    for (const n of names) {
      assert.equal(globMatch(p, n), re.test(n), `${JSON.stringify(p)} vs ${JSON.stringify(n)}`);
      compared++;
    }
  }
  assert.equal(compared, patterns.length * names.length);
});
