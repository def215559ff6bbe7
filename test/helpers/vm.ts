// The test VM for the vagrant tier: boots it with test/vagrant/<backend>.sh, hands tests its SSH
// target, and always tears it down (after(), and a watcher on this process if it dies).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const CLI = join(REPO, 'dist/src/cli.js');

export type Backend = 'qemu' | 'vagrant';

/** test/vagrant/*.sh write this as target.json (see test/vagrant/README.md). */
export interface VmTarget {
  backend: Backend;
  host: string;
  port: number;
  /** The network namespace the VM lives in (vagrant backend); every client command runs inside it. */
  netns: string | null;
  rootUser: string;
  sudoUser: string;
  sudoPasswordUser: string;
  identity: string;
  knownHosts: string;
  hostKeyFingerprint: string;
  accel: string;
  kernel: string;
}

export interface Vm {
  target: VmTarget;
  stateDir: string;
  /** `user@host:port` for the CLI. */
  spec(user: string): string;
  /** argv prefix that puts a command where the VM is reachable (inside its netns, if any). */
  wrap(argv: string[]): string[];
  down(): Promise<void>;
}

/** Boot a VM; resolves once SSH answers. Progress goes to stderr. image: a variant of the qemu
 *  backend's image (test/vagrant/image-<image>.sh: cloudinit, bullseye, trixie). */
export async function bootVm(backend: Backend, image?: string): Promise<Vm> {
  const stateDir = mkdtempSync(join(tmpdir(), `prep-node-vm-${backend}-`));
  const script = join(REPO, 'test/vagrant', `${backend}.sh`);
  const down = async () => {
    await runScript(script, ['down', stateDir]);
    rmSync(stateDir, { recursive: true, force: true });
  };
  try {
    await runScript(script, ['up', stateDir, '--owner-pid', String(process.pid), ...(image ? ['--image', image] : [])]);
  } catch (err) {
    await down();
    throw err;
  }
  const target = JSON.parse(readFileSync(join(stateDir, 'target.json'), 'utf8')) as VmTarget;
  return {
    target,
    stateDir,
    spec: (user) => (target.port === 22 ? `${user}@${target.host}` : `${user}@${target.host}:${target.port}`),
    wrap: (argv) => (target.netns ? ['ip', 'netns', 'exec', target.netns, ...argv] : argv),
    down,
  };
}

function runScript(script: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [script, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${script} ${args[0]} exited ${code}`))));
  });
}

/** An ssh_config for the CLI that trusts only the given known_hosts file and uses the VM's key. */
export function clientConfig(dir: string, vm: Vm, knownHosts: string): string {
  const file = join(dir, 'ssh_config');
  writeFileSync(
    file,
    [
      'Host *',
      `  IdentityFile ${vm.target.identity}`,
      '  IdentitiesOnly yes',
      '  IdentityAgent none',
      `  UserKnownHostsFile ${knownHosts}`,
      '  GlobalKnownHostsFile /dev/null',
      '',
    ].join('\n'),
  );
  return file;
}

export interface Ran {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Run the CLI where the VM is reachable. */
export function runCli(vm: Vm, args: string[]): Ran {
  return runWrapped(vm, [process.execPath, CLI, ...args]);
}

/** Run an ES module snippet with node where the VM is reachable. */
export function runNode(vm: Vm, code: string): Ran {
  return runWrapped(vm, [process.execPath, '--input-type=module', '-e', code]);
}

function runWrapped(vm: Vm, argv: string[]): Ran {
  const [cmd, ...rest] = vm.wrap(argv);
  const r = spawnSync(cmd!, rest, { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, timeout: 180_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
