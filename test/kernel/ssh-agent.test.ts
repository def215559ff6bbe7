// ssh-agent, as OpenSSH users rely on it: a key that exists only in a real ssh-agent logs in, found
// through SSH_AUTH_SOCK (the CLI, as a user runs it) or IdentityAgent in ssh_config; IdentityAgent
// none turns it off.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openHost } from '../../src/host/connect.js';
import { parseTarget } from '../../src/host/target.js';
import { HostError } from '../../src/errors.js';
import { authorize, makeClientKey, makeTempDir, removeTempDir, startSshd, type Sshd } from '../helpers/sshd.js';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

let sshd: Sshd;
let dir: string;
let agentPid = 0;
let sock: string;

before(async () => {
  sshd = await startSshd();
  dir = await makeTempDir('pntest-agent-');
  sock = join(dir, 'agent.sock');
  const out = execFileSync('ssh-agent', ['-s', '-a', sock], { encoding: 'utf8' });
  agentPid = Number(/SSH_AGENT_PID=(\d+)/.exec(out)?.[1]);
  // The key goes into the agent, then its file is deleted: only the agent can sign with it.
  const key = await makeClientKey(dir, { name: 'agent_only' });
  await authorize(sshd, 'root', key.publicKey);
  execFileSync('ssh-add', ['-q', key.privateKeyPath], { env: { ...process.env, SSH_AUTH_SOCK: sock }, stdio: 'ignore' });
  rmSync(key.privateKeyPath);
});

after(async () => {
  if (agentPid) process.kill(agentPid);
  await sshd?.stop();
  if (dir) await removeTempDir(dir);
});

/** An ssh_config with known_hosts for the sshd and no key file; `agentLine` decides the agent. */
function config(name: string, agentLine: string): string {
  const knownHosts = join(dir, 'known_hosts');
  writeFileSync(knownHosts, sshd.knownHostsLine() + '\n');
  const file = join(dir, name);
  writeFileSync(file, `Host *\n  UserKnownHostsFile ${knownHosts}\n  GlobalKnownHostsFile /dev/null\n  IdentityFile ${join(dir, 'no-such-key')}\n${agentLine}`);
  return file;
}

test('the CLI logs in with a key only ssh-agent holds, found through SSH_AUTH_SOCK', () => {
  const cfg = config('env.config', '');
  const r = spawnSync(process.execPath, [CLI, 'check', '--json', '--steal-seconds', '1', '-F', cfg, `root@127.0.0.1:${sshd.port}`], {
    encoding: 'utf8',
    env: { ...process.env, SSH_AUTH_SOCK: sock },
  });
  assert.ok(r.status === 0 || r.status === 1, `exit ${r.status}: ${r.stderr}`);
  assert.equal((JSON.parse(r.stdout) as { hosts: { reachable: boolean }[] }).hosts[0]!.reachable, true);
});

test('IdentityAgent in ssh_config names the agent socket', async () => {
  const host = await openHost(parseTarget(`root@127.0.0.1:${sshd.port}`), { configFile: config('path.config', `  IdentityAgent ${sock}\n`) });
  try {
    assert.equal(await host.exec('echo via-agent'), 'via-agent\n');
  } finally {
    await host.close();
  }
});

test('IdentityAgent none: the agent is not asked, and the error says what was tried', async () => {
  const prev = process.env.SSH_AUTH_SOCK;
  process.env.SSH_AUTH_SOCK = sock;
  try {
    await assert.rejects(
      openHost(parseTarget(`root@127.0.0.1:${sshd.port}`), { configFile: config('none.config', '  IdentityAgent none\n') }),
      (e: unknown) => e instanceof HostError && e.kind === 'auth' && /no ssh-agent and no usable key file/.test(e.message),
    );
  } finally {
    if (prev === undefined) delete process.env.SSH_AUTH_SOCK;
    else process.env.SSH_AUTH_SOCK = prev;
  }
});
