// The `fix:` line: the prep-node command that makes the change, when `apply` does it, then the manual
// command; and wrapping for a terminal (a hanging indent at whole words, never mid-word).
import { shQuote } from '../host/host.js';

// Checks whose findings the tuners fix (src/tuners: sysctl, modules, bpffs, mtu, channels), and the
// manual commands in their remedies that a tuner performs. A remedy without one of these (a kernel
// to install, a provider to ask) gets no apply line: apply cannot do it.
const APPLY_FIXES = new Set(['sysctl.drift', 'ipvs.modules', 'bpf.fs', 'net.mtu', 'net.multiqueue', 'conntrack.capacity', 'kubelet.basics']);
const TUNER_COMMAND = /\b(sysctl -w|modprobe|mount -t bpf|ip link set (?:dev )?\S+ mtu|ethtool -L)\b/;

function arg(s: string): string {
  return /^[\w@%+=:,./[\]-]+$/.test(s) ? s : shQuote(s);
}

/** The fix text for a finding: `prep-node apply TARGET --profile P; by hand: …` when apply does it, else the remedy. */
export function fixText(checkId: string, remedy: string, target: string, profile: string): string {
  if (!APPLY_FIXES.has(checkId) || !TUNER_COMMAND.test(remedy)) return remedy;
  return `prep-node apply ${arg(target)} --profile ${arg(profile)}; by hand: ${remedy}`;
}

/**
 * `text` broken at spaces so no line is longer than `width` (a word longer than that stays whole),
 * each line after the first indented by `indent` spaces. No width: one line, as it was.
 */
export function wrap(text: string, width: number | undefined, first: number, indent: number): string {
  if (width === undefined || first + text.length <= width) return text;
  const lines: string[] = [];
  let line = '';
  let room = width - first;
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > room) {
      lines.push(line);
      line = word;
      room = width - indent;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  lines.push(line);
  return lines.join(`\n${' '.repeat(indent)}`);
}
