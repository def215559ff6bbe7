#!/usr/bin/env node
// argv → typed options → one command function; nothing else happens here. Commands are imported
// lazily so `--help` stays fast. Expected failures print one line and set a documented exit code.
import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ExitCode, PrepNodeError, oneLine, printable } from './errors.js';
import { parsePort } from './host/target.js';
import { seaAsset } from './sea.js';
import type { CheckOptions } from './commands/check.js';
import type { ApplyOptions, RollbackOptions } from './commands/apply.js';
import type { DatapathOptions, ObserveOptions } from './commands/datapath.js';
import type { CloudInitOptions } from './commands/cloud-init.js';
import type { BenchOptions } from './commands/bench.js';

const VERSION = (JSON.parse(seaAsset('package.json') ?? readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const TARGETS = `
Targets:
  [user@]host[:port], [user@][ipv6]:port, an ssh_config alias, or "local" (this machine, no SSH).
  No target and no --inventory means "local". SSH follows ~/.ssh/config (via ssh -G), ssh-agent
  and ~/.ssh/known_hosts as OpenSSH does; unknown host keys are refused unless --accept-new-host-key.
`;

// What each exit code means; a command's --help lists the ones that command can return.
const REACH = {
  3: 'a host could not be reached: DNS, refused, timeout, authentication, host key unknown or changed',
  4: 'a host was reached but root was refused (sudo wants a password, or the user may not sudo)',
} as const;
const USAGE = { 2: 'bad usage or input (arguments, profile, inventory)' } as const;
const BUG = { 70: 'internal error (a bug: please report it)' } as const;
type Codes = Record<number, string>;

/** The "Exit codes:" help section for the codes a command can return. */
export function exitCodesHelp(codes: Codes): string {
  const lines = Object.entries(codes).map(([code, text]) => `  ${code.padEnd(3)}${text}`);
  return `\nExit codes:\n${lines.join('\n')}\n`;
}

const EXIT = {
  program: { 0: 'success (check: every check passed)', 1: 'findings: a check failed or could not tell; a datapath check failed', ...USAGE, ...REACH, 5: 'apply, datapath: the node cannot take what was asked; nothing was changed', 6: 'apply: an MTU or channel change cut the SSH session and the node reverted it', 7: 'rollback: the restore failed on the node; the journal is kept, run rollback again', 8: 'apply: a change failed on the node part-way; what was done is journaled, rollback undoes it', ...BUG },
  check: { 0: 'every check passed (warnings allowed)', 1: 'findings: a check or a fleet check failed, or a check could not tell (error)', ...USAGE, ...REACH, ...BUG },
  apply: {
    0: 'applied and verified (or nothing to change; --dry-run: the plan was printed)',
    1: 'a change was applied but did not verify',
    ...USAGE,
    ...REACH,
    5: 'the node cannot take the profile (unknown sysctl, missing module, MTU above the link\'s maximum, a tool missing, a node file prep-node will not touch); nothing was changed',
    6: 'an MTU or channel change cut the SSH session and the node reverted it',
    8: 'a change failed on the node part-way (the message names the step); what was done is journaled: fix the cause and apply again, or rollback',
    ...BUG,
  },
  rollback: { 0: 'restored (or nothing to restore)', 1: 'a restored value did not verify', ...USAGE, ...REACH, 5: 'a node file prep-node will not touch (a journal that is not ours); nothing was changed', 7: 'the restore failed on the node; the journal is kept, run rollback again', ...BUG },
  datapath: { 0: 'done', 1: 'the datapath is not healthy, or a selftest check failed', ...USAGE, ...REACH, 5: 'the node cannot run the datapath (kernel, bpffs, cgroup v2); nothing was changed', ...BUG },
  local: { 0: 'done', ...USAGE, ...BUG },
  agent: { 0: 'stopped by SIGTERM or SIGINT (the datapath keeps serving unless --remove-on-exit)', ...USAGE, 5: 'the datapath could not be installed or its maps opened', ...BUG },
  agentInstall: { 0: 'done on every node', ...USAGE, ...REACH, 5: 'the node cannot take the agent (no systemd, already installed, a path in the way); nothing was changed', ...BUG },
  bench: { 0: 'done', ...USAGE, 4: 'not run as root', ...BUG },
} satisfies Record<string, Codes>;

function int(name: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max) throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}`);
    return n;
  };
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function list(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(',').map((s) => s.trim()).filter(Boolean)];
}

/** Options shared by every command that reaches nodes. */
function hostOptions(cmd: Command): Command {
  return cmd
    .option('-i, --identity <file>', 'private key to try first, like ssh -i (repeatable)', collect)
    .option('-p, --port <port>', 'SSH port when the target names none, like ssh -p', (v) => parsePort(v, (w) => new InvalidArgumentError(w)))
    .option('-l, --login <user>', 'login user when the target names none, like ssh -l')
    .option('-F, --ssh-config <file>', 'ssh_config file instead of ~/.ssh/config, like ssh -F')
    .option('--accept-new-host-key', 'trust and record an unknown host key (a changed key is always refused)')
    .option('--connect-timeout <seconds>', 'give up on a host after this long (default: ConnectTimeout from ssh_config, else 20)', int('--connect-timeout', 1, 3600))
    .option('--inventory <file>', 'hosts from a file: our YAML list, or an Ansible inventory (INI or YAML)')
    .option('--limit <pattern>', 'inventory hosts to use, as Ansible: names, groups, globs, a:b, &group, !group')
    .addOption(new Option('--concurrency <n>', 'hosts worked on at once').default(16).argParser(int('--concurrency', 1, 1024)));
}

export function buildProgram(): Command {
  const program = new Command('prep-node')
    .description('Check and tune KVM VPS nodes over SSH for Kubernetes networking.')
    .version(VERSION)
    // program options before the command only: `agent install` has options named as `agent`'s own
    .enablePositionalOptions()
    .addHelpText('after', TARGETS + exitCodesHelp(EXIT.program))
    .showHelpAfterError('(run prep-node --help for usage)')
    .exitOverride();

  hostOptions(
    program
      .command('check')
      .description('check nodes against a profile; every finding comes with its fix')
      .argument('[targets...]', 'hosts to check (default: local)')
      .option('--profile <name|file>', 'built-in profile name or a profile file (default: k8s-worker, or the inventory entry\'s profile)')
      .option('--json', 'print one JSON document (schema prep-node/check/v1) and nothing else on stdout')
      .option('--ignore <ids>', 'check ids (comma-separated, repeatable) or "all" whose failures do not set the exit code', list)
      .addOption(new Option('--steal-seconds <n>', 'how long cpu.steal samples /proc/stat').default(5).argParser(int('--steal-seconds', 1, 300)))
      .addHelpText('after', TARGETS + exitCodesHelp(EXIT.check)),
  ).action(async (targets: string[], options: CheckOptions) => {
    const { check } = await import('./commands/check.js');
    process.exitCode = await check(targets, options, io());
  });
  hostOptions(
    program
      .command('apply')
      .description('tune nodes to a profile: sysctls, modules, bpffs, MTU, NIC channels; persistent, journaled, idempotent')
      .argument('[targets...]', 'hosts to tune (default: local)')
      .option('--profile <name|file>', 'built-in profile name or a profile file (default: k8s-worker, or the inventory entry\'s profile)')
      .option('--dry-run', 'print the plan (current → desired, and how each persists) and change nothing')
      .addOption(
        new Option('--confirm-timeout <seconds>', 'after an MTU or channel change, the node reverts it unless prep-node reconnects within this long')
          .default(60)
          .argParser(int('--confirm-timeout', 10, 3600)),
      )
      .addHelpText('after', TARGETS + exitCodesHelp(EXIT.apply)),
  ).action(async (targets: string[], options: ApplyOptions) => {
    const { apply } = await import('./commands/apply.js');
    process.exitCode = await apply(targets, options, io());
  });
  hostOptions(
    program
      .command('rollback')
      .description('restore everything apply changed (from the journal on the node) and remove what it created')
      .argument('[targets...]', 'hosts to roll back (default: local)')
      .option('--dry-run', 'print what would be restored and change nothing')
      .addHelpText('after', TARGETS + exitCodesHelp(EXIT.rollback)),
  ).action(async (targets: string[], options: RollbackOptions) => {
    const { rollbackCommand } = await import('./commands/apply.js');
    process.exitCode = await rollbackCommand(targets, options, io());
  });
  program
    .command('cloud-init')
    .description('print a #cloud-config document that tunes a new node on its first boot as apply would')
    .option('--profile <name|file>', 'built-in profile name or a profile file (default: k8s-worker)')
    .option('-o, --output <file>', 'write the document to FILE (atomically) instead of stdout')
    .addHelpText('after', exitCodesHelp(EXIT.local))
    .action(async (options: CloudInitOptions) => {
      const { cloudInit } = await import('./commands/cloud-init.js');
      process.exitCode = await cloudInit(options, io());
    });
  const dpCmd = program.command('datapath').description("prep-node's eBPF datapath: Service load balancing and L3/L4 policy on nodes");
  const verb = (name: 'install' | 'sync' | 'status' | 'selftest' | 'metrics' | 'remove', description: string) =>
    hostOptions(dpCmd.command(name).description(description).argument('[targets...]', 'nodes (default: local)'))
      .addHelpText('after', TARGETS + exitCodesHelp(EXIT.datapath))
      .action(async (targets: string[], options: DatapathOptions) => {
        const { datapath } = await import('./commands/datapath.js');
        process.exitCode = await datapath(name, targets, options, io());
      });
  verb('install', 'upload the loader, load the BPF programs, pin the maps, attach (all or nothing)')
    .option('--tc-dev <ifname>', 'attach the tc program to this device too (forwarded and NodePort traffic; repeatable)', collect)
    .option('--cap <map=n,...>', 'map capacities set at load time, e.g. services=2000000,conntrack=524288')
    .option('--cgroup <dir>', 'cgroup v2 directory for the socket programs (default: the cgroup v2 root)')
    .option('--force', 're-install over an existing install (map contents are lost)')
    .option('--no-flow-events', 'send events for drops only, not one per new forwarded flow (busy nodes)')
    .option('--ct-timeout <name=duration,...>', 'conntrack lifetimes: tcp-syn (60s), tcp-established (6h), tcp-closing (10s), udp (60s), other (60s); durations in s/m/h/d, e.g. tcp-established=1d,udp=30s')
    .option('--metrics-textfile <dir>', "keep <dir>/prep_node_datapath.prom up to date for node_exporter's textfile collector")
    .addOption(new Option('--metrics-interval <seconds>', 'how often the metrics file is rewritten').default(15).argParser(int('--metrics-interval', 1, 3600)))
    .addOption(new Option('--ct-gc-interval <seconds>', 'a systemd timer removes expired conntrack entries this often (0: no timer; nodes run by the agent need none)').default(300).argParser(int('--ct-gc-interval', 0, 43200)));
  verb('sync', 'make the maps hold exactly the desired state: a prep-node state file, or Kubernetes manifests (a file or a directory)')
    .requiredOption('-f, --file <file|dir>', 'desired state: a state YAML, or manifests as kubectl apply -f takes them (Namespace, Pod, Service, EndpointSlice, Endpoints, NetworkPolicy, CiliumNetworkPolicy)')
    .option('--allow-partial', 'enforce what the datapath can and list what is left out (default: refuse the whole input)')
    .option('--node-address <ip>', "this node's address, IPv4 or IPv6, for NodePort services and SNAT of remote backends (repeatable; the first of each family is that family's SNAT source)", collect)
    .option('--node-name <name>', "this node's Kubernetes name (manifests only): backends and pods on other nodes are remote, traffic policies Local are kept (one target)")
    .option('--full', 'clear the maps and write everything (default: only what changed)')
    .option('--dry-run', 'print what would be written, write nothing')
    .option('--json', 'print JSON');
  verb('status', 'programs attached, map fill levels, drops per reason').option('--json', 'print JSON');
  verb('selftest', 'prove the datapath on the node with real traffic in namespaces it creates and removes')
    .addOption(new Option('--connections <n>', 'connections per distribution check').default(200).argParser(int('--connections', 20, 100000)))
    .option('--json', 'print JSON');
  verb('metrics', 'print the datapath counters in the Prometheus text format (drops by reason, forwarded by service, map fill, lost events)');
  verb('remove', 'detach everything, remove the pinned maps, the names index and the metrics textfile writer');
  hostOptions(
    dpCmd
      .command('observe')
      .description('flow events from the node (drops, and new forwarded flows) with pods, labels, services and policies named')
      .argument('[targets...]', 'nodes (default: local)')
      .option('--verdict <verdict>', 'dropped, forwarded (one event per new flow) or all', 'dropped')
      .option('--follow', 'keep watching (polls the node every second) until Ctrl-C')
      .option('--max <n>', 'stop after this many events', int('--max', 1, 100_000_000))
      .option('--json', 'one JSON object per line (events, then {"lost": n})')
      .addHelpText('after', TARGETS + exitCodesHelp(EXIT.datapath)),
  ).action(async (targets: string[], options: ObserveOptions) => {
    const { observe } = await import('./commands/datapath.js');
    process.exitCode = await observe(targets, options, io());
  });
  const agentCmd = program
    .command('agent')
    // the agent's own --kubeconfig and --listen are not install's: options after `install` are install's
    .enablePositionalOptions()
    .version(VERSION)
    .description('run on the node as root: follow the API server and keep the datapath in step (kube-proxy replacement and policy)')
    .option('--kubeconfig <file>', 'kubeconfig (default: in-cluster service account)')
    .option('--node-name <name>', "this node's Node object, for NodePort addresses (default: the host name)")
    .option('--listen <addr:port>', '/healthz, /readyz and /metrics', '127.0.0.1:10260')
    .option('--log-format <format>', 'text or json', 'text')
    .option('--remove-on-exit', 'remove the datapath on SIGTERM/SIGINT (default: leave it serving)')
    .addOption(new Option('--min-sync-interval <ms>', 'hold syncs this far apart (0: a change is written at once; bursts still go out in one batch)').default(0).argParser(int('--min-sync-interval', 0, 60000)))
    .addOption(new Option('--ct-gc-interval <seconds>', 'remove expired conntrack entries this often (0: never; removed UDP backends are flushed at once regardless)').default(300).argParser(int('--ct-gc-interval', 0, 43200)))
    .option('--tc-dev <ifname>', 'when the agent installs the datapath: as `datapath install --tc-dev`', collect)
    .option('--cap <map=n,...>', 'when the agent installs the datapath: as `datapath install --cap`')
    .option('--cgroup <dir>', 'when the agent installs the datapath: as `datapath install --cgroup`')
    .option('--no-flow-events', 'when the agent installs the datapath: as `datapath install --no-flow-events`')
    .addHelpText('after', exitCodesHelp(EXIT.agent))
    .action(async (options: import('./commands/agent.js').AgentOptions) => {
      process.exitCode = await (await import('./commands/agent.js')).agent(options);
    });
  hostOptions(
    agentCmd
      .command('install')
      .description('upload the agent executable (`make sea`) and run it on the node as a systemd service (journaled: `agent remove` undoes it)')
      .argument('[targets...]', 'nodes')
      .option('--kubeconfig <file>', "kubeconfig the node's agent uses (copied to the node with mode 0600)")
      .option('--node-name <name>', "the node's Node object (default: the node's host name)")
      .option('--listen <addr:port>', "the agent's /healthz, /readyz and /metrics on the node", '127.0.0.1:10260')
      .addHelpText('after', TARGETS + exitCodesHelp(EXIT.agentInstall)),
  ).action(async (targets: string[], options: import('./commands/agent.js').AgentInstallCliOptions) => {
    process.exitCode = await (await import('./commands/agent.js')).agentInstall(targets, options, io());
  });
  hostOptions(
    agentCmd
      .command('remove')
      .description('stop and remove the agent service, and put back every file `agent install` changed, byte for byte')
      .argument('[targets...]', 'nodes')
      .addHelpText('after', TARGETS + exitCodesHelp(EXIT.agentInstall)),
  ).action(async (targets: string[], options: import('./commands/hosts.js').HostOptions) => {
    process.exitCode = await (await import('./commands/agent.js')).agentRemove(targets, options, io());
  });
  program
    .command('npd')
    .description('write a node-problem-detector custom plugin monitor, its POSIX sh plugin and node-feature-discovery timer units, for after bootstrap')
    .option('-o, --out <dir>', 'existing directory for prep-node-monitor.json, prep-node-check.sh, prep-node-nfd.service and .timer')
    .option('--plugin-path <path>', 'where prep-node-check.sh will be on the node', '/etc/node-problem-detector.d/plugin/prep-node-check.sh')
    .option('--interval <duration>', "NPD's invoke_interval, a Go duration", '60s')
    .addHelpText('after', exitCodesHelp(EXIT.local))
    .action(async (options: import('./commands/npd.js').NpdOptions) => {
      const { npd } = await import('./commands/npd.js');
      process.exitCode = await npd(options, io());
    });
  program
    .command('bench')
    .description('measure the datapath against kube-proxy-style iptables and nftables on this machine (root; in network namespaces it creates and removes)')
    .option('--sizes <list>', 'numbers of services, comma-separated (default 1,1000,10000,100000; 10k = 10000)', list)
    .addOption(new Option('--runs <n>', 'runs per figure: the median is reported with min and max (--agent: nftables changes; 0 leaves them out)').default(3).argParser(int('--runs', 0, 50)))
    .addOption(new Option('--duration <ms>', 'connections are made for this long per run').default(1000).argParser(int('--duration', 100, 60000)))
    .addOption(new Option('--warmup <n>', 'connections before each run that are not counted').default(200).argParser(int('--warmup', 0, 1000000)))
    .addOption(new Option('--endpoints <n>', 'endpoints per service').default(2).argParser(int('--endpoints', 1, 100)))
    .option('--modes <list>', 'modes to run besides the direct baseline: prepnode-sock, prepnode-tc, iptables-nft, iptables-legacy, nftables (default all)', list)
    .addOption(new Option('--program-timeout <seconds>', 'a mode that takes longer to program a size is stopped there (larger sizes are skipped)').default(60).argParser(int('--program-timeout', 1, 3600)))
    .option('--pkt-sizes <list>', 'numbers of services for the per-packet section (tc_lb through BPF_PROG_TEST_RUN; default 10,10k,1m)', list)
    .addOption(new Option('--pkt-repeat <n>', 'per-packet section: iterations of the kernel\'s loop per repeat case').default(1000000).argParser(int('--pkt-repeat', 1, 100000000)))
    .addOption(new Option('--pkt-flows <n>', 'per-packet section: flows (one test run each) per first-packet case').default(10000).argParser(int('--pkt-flows', 1, 50000)))
    .option('--no-pkt', 'leave the per-packet section out')
    .option('--json', 'print one JSON document (schema prep-node/bench/v1) instead of the table')
    .option('--report <dir>', 'also write DIR/README.md with SVG plots and DIR/bench.json')
    .option('--cleanup', 'only remove the namespaces, mounts and cgroups that interrupted runs left behind')
    .option('--quiet', 'no progress lines on stderr')
    .option('--agent', 'instead: the agent against the fake API server on real pinned maps (10k services, 50k endpoints, 5k pods; churn at 100/s and 1000/s for 30 s each) beside kube-proxy nftables\'s cost of one endpoint change')
    .option('--quick', 'with --agent: 1000 services, 5000 endpoints, 500 pods, 10 s of churn per rate')
    .addOption(new Option('--churn <seconds>', 'with --agent: seconds of churn per rate (default 30; 10 with --quick); --sizes N sets the services (5 endpoints each, N/2 pods)').argParser(int('--churn', 1, 600)))
    .addHelpText('after', exitCodesHelp(EXIT.bench))
    .action(async (options: BenchOptions) => {
      const { bench } = await import('./commands/bench.js');
      process.exitCode = await bench(options, io());
    });
  const profiles = program.command('profiles').description('the built-in profiles, and profiles resolved');
  profiles
    .command('list')
    .description('list the built-in profiles')
    .addHelpText('after', exitCodesHelp(EXIT.local))
    .action(async () => {
      const { listProfiles } = await import('./commands/profiles.js');
      await listProfiles(io());
    });
  profiles
    .command('show')
    .description('print a profile with what it extends merged and defaults filled in')
    .argument('<name|file>', 'built-in profile name or a profile file')
    .addHelpText('after', exitCodesHelp(EXIT.local))
    .action(async (name: string) => {
      const { showProfile } = await import('./commands/profiles.js');
      await showProfile(name, io());
    });
  return program;
}

function io() {
  return { stdout: process.stdout, stderr: process.stderr, version: VERSION };
}

/**
 * A reader that closes the pipe early (`| head -1`, `| grep -q`) has what it wanted: writes to that
 * stream are dropped instead of crashing with an unhandled EPIPE, and the command runs to its end
 * (an apply is never cut short by its reader) with the exit code it would have had.
 */
export function ignoreClosedPipe(stream: NodeJS.WriteStream): void {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') return;
    throw err;
  });
}

export async function main(argv: string[]): Promise<void> {
  ignoreClosedPipe(process.stdout);
  ignoreClosedPipe(process.stderr);
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and --version exit 0; every other commander error has printed its message already.
      process.exitCode = err.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    } else if (err instanceof PrepNodeError) {
      process.stderr.write(`prep-node: ${printable(oneLine(err))}\n`);
      // an error listing several findings (manifests refused by `datapath sync`) carries them as details
      const details = (err as { details?: unknown }).details;
      if (Array.isArray(details)) for (const d of details) process.stderr.write(`  ${printable(String(d))}\n`);
      // a bug met on one host is wrapped (InternalError): its cause has the stack
      if (process.env.PREP_NODE_DEBUG && err.exitCode === ExitCode.internal) process.stderr.write(`${((err.cause as Error | undefined) ?? err).stack}\n`);
      process.exitCode = err.exitCode;
    } else {
      process.stderr.write(`prep-node: internal error: ${printable(oneLine(err))}\n`);
      if (process.env.PREP_NODE_DEBUG) process.stderr.write(`${(err as Error).stack}\n`);
      process.exitCode = ExitCode.internal;
    }
  }
}

// not awaited at the top: the single executable's bundle is CommonJS, which has no top-level await
void main(process.argv);
