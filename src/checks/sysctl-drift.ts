// sysctl.drift: every sysctl of the profile has its desired value now, reported the way tuned's
// verify does ("'x' = 'a', expected 'b'"), with the line that sets them and the sysctl.d file that
// persists them.
import type { Check, Finding } from './types.js';
import { SYSCTL_FILE, effectiveDesired, normalizeSysctl, readSysctls, sysctlKeys, type SysctlValue } from '../probes/sysctl.js';
import { shQuote } from '../host/host.js';

export const sysctlDrift: Check = {
  id: 'sysctl.drift',
  title: 'Sysctls as in the profile',
  async run(ctx): Promise<Finding> {
    return judgeSysctls(await readSysctls(ctx, sysctlKeys(ctx.profile)), ctx.profile.sysctl, ctx.profile.optionalSysctl, ctx.profile.name);
  },
};

/** The verdict on current against desired sysctls; pure. */
export function judgeSysctls(current: Map<string, SysctlValue>, desired: Record<string, string | number>, optional: string[], profile = 'PROFILE'): Finding {
  const keys = Object.keys(desired);
  const expected = `${keys.length} sysctl${keys.length === 1 ? '' : 's'} as in the profile (capacity limits: at least)`;
  if (keys.length === 0) return { status: 'pass', observed: 'profile sets no sysctls', expected };
  const drift: string[] = [];
  const unknown: string[] = [];
  const unreadable: string[] = [];
  const absentOptional: string[] = [];
  const above: string[] = [];
  const set: [string, string][] = [];
  const persist: [string, string][] = [];
  for (const key of keys) {
    const want = normalizeSysctl(desired[key]!);
    const cur = current.get(key);
    if (!cur || cur.state === 'absent') {
      if (optional.includes(key)) absentOptional.push(key);
      else unknown.push(key);
      continue;
    }
    if (cur.state === 'unreadable') {
      persist.push([key, want]);
      unreadable.push(key);
      continue;
    }
    const have = normalizeSysctl(cur.value);
    const eff = effectiveDesired(key, have, want);
    if (eff !== want && have === eff) {
      above.push(`${key} = ${have} (above ${want}: kept)`);
      persist.push([key, have]);
      continue;
    }
    persist.push([key, eff]);
    if (have !== eff) {
      drift.push(`${key} = ${have || '(empty)'}, expected ${eff}`);
      set.push([key, eff]);
    }
  }
  const checked = keys.length - absentOptional.length;
  const notes = [
    ...above,
    ...unknown.map((k) => `${k}: unknown sysctl on this kernel`),
    ...unreadable.map((k) => `${k}: not readable as this user`),
    ...absentOptional.map((k) => `${k}: absent (optional)`),
  ];
  const summary = drift.length > 0 ? `${drift.length} of ${checked} differ` : `${checked - unknown.length - unreadable.length} of ${checked} as wanted`;
  const observed = [...drift, ...notes, summary].join('; ');
  const source = "desired values and why: the profile's comments (profiles/*.yaml); report format after tuned's sysctl verify";
  if (drift.length > 0) {
    const assign = set.map(([k, v]) => shQuote(`${k}=${v}`)).join(' ');
    const file = persist.map(([k, v]) => shQuote(`${k} = ${v}`)).join(' ');
    return {
      status: 'fail',
      observed,
      expected,
      remedy: `sysctl -w ${assign} && printf '%s\\n' ${file} > ${SYSCTL_FILE}`,
      detail: `\`prep-node apply TARGET --profile ${profile}\` sets them and writes ${SYSCTL_FILE} (originals journaled: \`prep-node rollback\` undoes it); by hand, the printf persists them across reboots. ${source}`,
    };
  }
  if (unknown.length > 0 || unreadable.length > 0) {
    return {
      status: 'error',
      observed,
      expected,
      detail: `cannot compare ${[...unknown, ...unreadable].join(', ')}: ${unknown.length > 0 ? 'the kernel has no such key (a typo, or add it to optionalSysctl when a module provides it)' : 'run as root or a sudo user'}. ${source}`,
    };
  }
  return { status: 'pass', observed, expected, detail: source };
}
