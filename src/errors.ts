// Every error prep-node expects to meet is a PrepNodeError: one readable line and an exit code.
// Messages are built here, in one place, so they read alike and say how to fix the input.

/** Exit codes, documented in `--help` and the README. */
export const ExitCode = {
  ok: 0,
  findings: 1,
  usage: 2,
  unreachable: 3,
  privilege: 4,
  /** The node cannot take the profile (unknown sysctl, MTU above the link's maximum, a tool missing): nothing was changed. */
  refused: 5,
  /** A change cut the SSH session and the node reverted it (or was left to revert it). */
  reverted: 6,
  /** rollback: the restore script failed on the node; the journal is kept so a rollback can be run again. */
  rollbackFailed: 7,
  /** apply: a write step failed on the node part-way; what was done before it is journaled and `prep-node rollback` undoes it. */
  applyFailed: 8,
  internal: 70,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** An expected failure: printed as `prep-node: <message>` without a stack trace. */
export class PrepNodeError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'PrepNodeError';
  }
}

/** Bad usage or bad input (argv, inventory, profile): exit 2. */
export class UsageError extends PrepNodeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.usage, options);
    this.name = 'UsageError';
  }
}

/**
 * The node cannot take what the profile asks, or holds something prep-node will not work on (a netplan
 * file that does not parse, another filesystem at the bpffs path, a journal that is not ours, a
 * directory where a file goes): found before any write, exit 5.
 */
export class NodeRefusal extends PrepNodeError {
  constructor(
    readonly host: string,
    detail: string,
  ) {
    super(`${host}: ${detail}`, ExitCode.refused);
    this.name = 'NodeRefusal';
  }
}

/** Rollback's restore script failed on the node: exit 7. The journal stays, so rollback can be run again. */
export class RollbackError extends PrepNodeError {
  constructor(
    readonly host: string,
    detail: string,
  ) {
    super(`${host}: ${detail}`, ExitCode.rollbackFailed);
    this.name = 'RollbackError';
  }
}

/**
 * Apply's write script stopped at a step that failed on the node (a full disk, a read-only file, a
 * sysctl the kernel refused at write time): exit 8. The steps before it are journaled, so `prep-node
 * rollback` undoes them; the message names the step, why, and what ran before it.
 */
export class ApplyError extends PrepNodeError {
  constructor(
    readonly host: string,
    detail: string,
  ) {
    super(`${host}: ${detail}`, ExitCode.applyFailed);
    this.name = 'ApplyError';
  }
}

/** Why a host could not be used; `kind` is stable and appears in --json. */
export type HostErrorKind =
  | 'dns'
  | 'refused'
  | 'timeout'
  | 'unreachable'
  | 'auth'
  | 'host-key-unknown'
  | 'host-key-changed'
  | 'host-key-revoked'
  | 'proxy'
  | 'sudo-password'
  | 'sudo-missing'
  | 'disconnected';

/** A host could not be reached or used. Exit 3, or 4 when the only problem is privilege. */
export class HostError extends PrepNodeError {
  constructor(
    readonly host: string,
    readonly kind: HostErrorKind,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`${host}: ${detail}`, kind.startsWith('sudo') ? ExitCode.privilege : ExitCode.unreachable, options);
    this.name = 'HostError';
  }
}

/**
 * A bug met while working on one host (anything thrown that is not a PrepNodeError): exit 70 for the
 * run, reported as that host's outcome so the other hosts finish. `cause` keeps the original (its
 * stack is printed with PREP_NODE_DEBUG=1).
 */
export class InternalError extends PrepNodeError {
  constructor(
    readonly host: string,
    cause: unknown,
  ) {
    super(`${host}: internal error (a bug: please report it): ${oneLine(cause)}`, ExitCode.internal, { cause });
    this.name = 'InternalError';
  }
}

/** One line for any thrown value: our own message, or the first line of a foreign one. */
export function oneLine(err: unknown): string {
  if (err instanceof Error) return err.message.split('\n')[0] ?? err.name;
  return String(err).split('\n')[0] ?? '';
}

/**
 * Text from outside (a node's output, a file's values) made safe to print on a terminal: control
 * characters (C0 but tab, DEL, C1), line and paragraph separators and bidi/format characters are
 * written as \u{…}, so an escape sequence in a value cannot retitle, clear or recolor the terminal.
 */
export function printable(text: string): string {
  return text.replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu, (c) => (c === '\t' ? c : `\\u{${c.codePointAt(0)!.toString(16).padStart(4, '0')}}`));
}

/** A command on a host failed where success was required (exec, readFile, writeFile). */
export class CommandError extends PrepNodeError {
  constructor(
    readonly host: string,
    readonly command: string,
    readonly code: number | null,
    stderr: string,
  ) {
    const why = stderr.trim().split('\n').pop() || (code === null ? 'killed or timed out' : `exit ${code}`);
    super(`${host}: \`${command}\` failed: ${why}`, ExitCode.internal);
    this.name = 'CommandError';
  }
}
