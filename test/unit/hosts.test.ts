// The per-host outcome loop every node command shares (src/commands/hosts.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ExitCode, HostError, InternalError, NodeRefusal, RollbackError } from '../../src/errors.js';
import { failureKind, failureLine, fleetExitCode, runOnHosts, throwIfOnlyHostFailed } from '../../src/commands/hosts.js';
import { parseTarget } from '../../src/host/target.js';
import { exitCodeFor } from '../../src/report/model.js';

const spec = (name: string) => ({ target: { ...parseTarget('local'), spec: name } });

test('a bug on one host is that host\'s internal error (exit 70 for the run); the other hosts finish', async () => {
  const specs = [spec('a'), spec('b'), spec('c')];
  const outcomes = await runOnHosts(
    specs,
    { concurrency: 1 },
    {
      work: (_host, s) => {
        if (s.target.spec === 'a') return Promise.reject(new TypeError("Cannot read properties of undefined (reading 'x')"));
        if (s.target.spec === 'b') return Promise.reject(new NodeRefusal('b', 'unknown sysctl on this kernel: net.nope'));
        return Promise.resolve(42);
      },
      summarize: String,
    },
    false,
  );
  assert.equal(outcomes.length, 3);
  const [a, b, c] = [outcomes[0]!, outcomes[1]!, outcomes[2]!];
  assert.ok(a && 'error' in a && a.error instanceof InternalError);
  assert.equal(a.error.exitCode, ExitCode.internal);
  assert.equal(a.error.message, "a: internal error (a bug: please report it): Cannot read properties of undefined (reading 'x')");
  assert.ok(a.error.cause instanceof TypeError, 'the bug is kept as the cause (its stack)');
  assert.equal(failureKind(a.error), 'internal');
  assert.ok(b && 'error' in b && b.error instanceof NodeRefusal);
  assert.equal(failureKind(b.error), 'refused');
  assert.deepEqual(c && 'value' in c && c.value, 42);
  assert.equal(fleetExitCode(outcomes, ExitCode.ok), ExitCode.refused, '5 before 70');
  assert.equal(fleetExitCode([a, c], ExitCode.findings), ExitCode.internal);
  assert.equal(fleetExitCode([c], ExitCode.findings), ExitCode.findings);
  assert.throws(() => throwIfOnlyHostFailed([a]), InternalError);
  assert.doesNotThrow(() => throwIfOnlyHostFailed(outcomes));
});

test('failure lines name the target once; exit codes follow 3, 4, 5, 6, 7, 70', () => {
  assert.equal(failureLine(spec('n1'), new HostError('n1', 'timeout', 'connect timed out')), 'n1: connect timed out');
  assert.equal(failureLine(spec('alias'), new RollbackError('10.0.0.1', 'rollback failed')), 'alias: 10.0.0.1: rollback failed');
  const o = (e: Error & { exitCode: ExitCode }) => ({ spec: spec('x'), error: e }) as never;
  assert.equal(fleetExitCode([o(new RollbackError('x', 'r')), o(new HostError('x', 'sudo-password', 's'))], ExitCode.ok), ExitCode.privilege);
  assert.equal(fleetExitCode([o(new InternalError('x', new Error('e'))), o(new RollbackError('x', 'r'))], ExitCode.ok), ExitCode.rollbackFailed);
});

test('check: a host that met a bug makes the run exit 70 unless a host was unreachable', () => {
  const ok = { target: 'a', profile: 'p', checks: [] };
  assert.equal(exitCodeFor([ok, { ...ok, target: 'b', error: { kind: 'internal', message: 'b: internal error' } }]), ExitCode.internal);
  assert.equal(exitCodeFor([{ ...ok, error: { kind: 'internal', message: '' } }, { ...ok, error: { kind: 'timeout', message: '' } }]), ExitCode.unreachable);
  assert.equal(exitCodeFor([{ ...ok, error: { kind: 'internal', message: '' } }, { ...ok, error: { kind: 'sudo-password', message: '' } }]), ExitCode.privilege);
});
