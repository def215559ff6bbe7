// A Host whose commands answer from a table of recorded outputs: checks run against it exactly as
// against a node, without one. It answers the command as the check wrote it (before the transport
// adds sudo and timeout(1), which the kernel tier tests on real hosts). An unlisted command fails
// loudly, so a test never passes by accident.
import { BaseHost, type SpawnOptions } from '../../src/host/base.js';
import type { RunOptions, RunResult } from '../../src/host/host.js';
import type { CheckContext, CheckOptions } from '../../src/checks/types.js';
import { loadProfile, parseProfile } from '../../src/profiles/load.js';

export type Answer = string | Partial<RunResult>;

export class FixtureHost extends BaseHost {
  readonly commands: string[] = [];

  constructor(
    private readonly answers: Record<string, Answer>,
    readonly name = 'fixture',
    readonly user = 'root',
  ) {
    super();
  }

  override run(command: string, _options: RunOptions = {}): Promise<RunResult> {
    this.commands.push(command);
    const a = this.answers[command];
    if (a === undefined) return Promise.resolve({ stdout: '', stderr: `fixture: no answer for ${command}`, code: 127, timedOut: false });
    const r = typeof a === 'string' ? { stdout: a } : a;
    return Promise.resolve({ stdout: r.stdout ?? '', stderr: r.stderr ?? '', code: r.code === undefined ? 0 : r.code, timedOut: r.timedOut ?? false });
  }

  protected spawn(_command: string, _options: SpawnOptions): Promise<RunResult> {
    return Promise.reject(new Error('FixtureHost answers in run()'));
  }

  async close(): Promise<void> {}
}

/** A check context on a FixtureHost with the built-in k8s-worker profile (or a YAML override). */
export async function fixtureContext(answers: Record<string, Answer>, profileYaml?: string, options: Partial<CheckOptions> = {}): Promise<CheckContext & { host: FixtureHost }> {
  const profile = profileYaml ? parseProfile(profileYaml, 'test-profile.yaml') : await loadProfile('k8s-worker');
  return { host: new FixtureHost(answers), profile, options: { stealSeconds: 1, ...options }, cache: new Map() };
}
