// What a tuner is. A tuner reads a node, plans (current → desired, and how each is persisted), and
// sets running values; the runner (runner.ts) journals originals, writes the persistent files, arms
// the auto-revert for changes that can cut the SSH session, verifies, and rolls back. A tuner never
// prints and never writes a persistent file itself: it returns the files' desired contents.
import type { Host } from '../host/host.js';
import type { Profile } from '../profiles/schema.js';

/** Tuners in the order they run: modules first (their sysctls appear when they load), session-cutting ones last. */
export type TunerId = 'modules' | 'sysctl' | 'bpffs' | 'mtu' | 'channels';

/** One running value to change. */
export interface Change {
  /** What changes: `net.core.somaxconn`, `ip_vs`, `/sys/fs/bpf`, `eth0`. */
  key: string;
  /** As read on the node, for people: `4096`, `not loaded`, `absent`. */
  current: string;
  desired: string;
  /** How the change survives a reboot, for people: `/etc/sysctl.d/90-prep-node.conf`, `netplan (/etc/netplan/90-prep-node.yaml)`. */
  persist: string;
}

/** A persistent form: a whole file (or a symlink) prep-node wants on the node. */
export interface FileWrite {
  path: string;
  /** Full desired content. Files prep-node edits (an ifupdown stanza) are planned as the whole new file. */
  content?: string;
  /** Instead of content: the link target (enabling a unit is a symlink in a .wants directory). */
  symlink?: string;
  /** Octal mode for a new file; an existing file keeps its own mode. */
  mode?: number;
}

/** A running value as it was before prep-node first changed it: what rollback puts back. */
export interface Original {
  tuner: TunerId;
  key: string;
  /** In the tuner's own encoding (a sysctl's text, `loaded`/`unloaded`, an MTU, a channel count). */
  value: string;
}

export interface TunerPlan {
  tuner: TunerId;
  /** Running values to change. */
  changes: Change[];
  /** Persistent files whose content differs from what is wanted (already-right files are left out). */
  files: FileWrite[];
  /** The current running value of every key in `changes`: journaled before the first write. */
  originals: Original[];
  /** Items already as wanted, for "nothing to change" and the plan's summary. */
  unchanged: string[];
  /** Items the profile asks for that this node does not have and that are allowed to be missing. */
  notes: string[];
}

/** What a tuner gets: the node, the profile, and a per-run memo for facts several tuners read. */
export interface TuneContext {
  host: Host;
  profile: Profile;
  cache: Map<string, Promise<unknown>>;
}

export interface Tuner {
  id: TunerId;
  title: string;
  /** MTU and NIC channels: a wrong value can cut the SSH session, so the runner arms an auto-revert first. */
  cutsSession?: boolean;
  /**
   * Its plan can change once the profile's modules are loaded (sysctl: the keys a module brings, such
   * as nf_conntrack_max): apply plans it again after loading them. Other tuners' plans do not read
   * anything a module load changes, and keep their first plan.
   */
  plansAfterModules?: boolean;
  /**
   * Read the node and plan; read-only. Throws NodeRefusal when the node cannot take the profile
   * (an unknown sysctl on this kernel, an MTU above the link's maximum, a tool missing).
   */
  plan(ctx: TuneContext): Promise<TunerPlan>;
  /**
   * The root sh command that sets the running values of `plan.changes` (called only when there are
   * some). Persistent files are the runner's job; the runner runs it as a step of its write script.
   */
  applyCommand(plan: TunerPlan): string;
  /** A POSIX sh command that puts one original running value back (used by rollback and the auto-revert script). */
  restoreCommand(original: Original): string;
  /** A sh command, safe on any node, run after this tuner's files were written or restored (`systemctl daemon-reload` where systemd runs). */
  reloadCommand?: string;
}
