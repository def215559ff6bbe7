// time.sync: a time daemon (chrony, systemd-timesyncd, ntpd) keeps the clock synchronised.
// One command finds the daemon that runs and asks it; nothing here needs root.
import type { Check, Finding } from './types.js';
import { parseSections } from '../probes/sections.js';

// TLS certificates (kubeadm's, etcd's peer and client certs) are valid from notBefore to notAfter on
// the wall clock, so a skewed node rejects good certificates; etcd warns when a peer's clock differs by
// more than 1 s ("clock difference against peer is too high", etcd rafthttp probing), and Raft leases
// and Kubernetes leases (node heartbeats, leader election) assume clocks that agree.
const SOURCE = "TLS certificates are checked against the wall clock and etcd warns at > 1 s skew between members ('clock difference against peer is too high'); leases (etcd, node heartbeats, leader election) assume clocks that agree";

/** A daemon's `comm` as the kernel shows it (15 characters at most). */
const DAEMONS = ['chronyd', 'ntpd', 'systemd-timesyn'] as const;
type Daemon = (typeof DAEMONS)[number];
const DAEMON_NAME: Record<Daemon, string> = { chronyd: 'chronyd', ntpd: 'ntpd', 'systemd-timesyn': 'systemd-timesyncd' };

/** Run `cmd` under a section header, its exit status on the section's last line as `rc=N`. */
function part(name: string, cmd: string): string {
  return `echo '@@ ${name}'; ${cmd} 2>&1; echo "rc=$?"`;
}

/** The one command: which daemons run, and what each says about synchronisation. */
export const TIME_SYNC_COMMAND = [
  'p=$(cat /proc/[0-9]*/comm 2>/dev/null | sort -u)',
  `echo '@@ daemons'; printf '%s\\n' "$p" | grep -xE '${DAEMONS.join('|')}'`,
  `if [ -d /run/systemd/system ]; then ${part('timedatectl', 'timedatectl show -p NTP -p NTPSynchronized')}; fi`,
  `if printf '%s\\n' "$p" | grep -qx chronyd; then ${part('chronyc', 'chronyc -n tracking')}; fi`,
  `if printf '%s\\n' "$p" | grep -qx ntpd; then if command -v ntpstat >/dev/null 2>&1; then ${part('ntpstat', 'ntpstat')}; fi; ${part('ntpq', 'ntpq -pn')}; fi`,
].join('; ');

export const timeSync: Check = {
  id: 'time.sync',
  title: 'Clock synchronised',
  async run({ host }): Promise<Finding> {
    return judgeTimeSync(await host.exec(TIME_SYNC_COMMAND));
  },
};

interface Answer {
  text: string;
  rc: number | null;
}

function answer(sections: Map<string, string>, name: string): Answer | undefined {
  const raw = sections.get(name);
  if (raw === undefined) return undefined;
  const m = /\nrc=(\d+)$|^rc=(\d+)$/.exec(raw);
  const rc = m ? Number(m[1] ?? m[2]) : null;
  return { text: m ? raw.slice(0, m.index) : raw, rc };
}

/** `Key : value` lines of chronyc tracking / `Key=value` lines of timedatectl show. */
function fields(text: string, sep: RegExp): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = sep.exec(line);
    if (m) out.set(m[1]!.trim(), m[2]!.trim());
  }
  return out;
}

export interface TimeState {
  daemon: string;
  synced: boolean | null;
  /** What the daemon said, short. */
  state: string;
}

/** chronyc tracking: "Leap status : Normal" when synchronised, "Not synchronised" when not. */
export function judgeChrony(a: Answer): TimeState {
  const f = fields(a.text, /^([^:]+?)\s*:\s*(.*)$/);
  const leap = f.get('Leap status');
  if (a.rc !== 0 || leap === undefined) return { daemon: 'chronyd', synced: null, state: `chronyc failed: ${a.text.trim().split('\n').pop() || `exit ${a.rc}`}` };
  const synced = leap !== 'Not synchronised';
  const ref = f.get('Reference ID') ?? '?';
  const detail = synced ? `, reference ${ref}, stratum ${f.get('Stratum') ?? '?'}, ${f.get('System time') ?? 'offset unknown'}` : '';
  return { daemon: 'chronyd', synced, state: `Leap status ${leap}${detail}` };
}

/** ntpstat exits 0 when synchronised, 1 when not, 2 when it cannot tell; ntpq -pn marks the system peer with `*`. */
export function judgeNtp(ntpstat: Answer | undefined, ntpq: Answer | undefined): TimeState {
  if (ntpstat && (ntpstat.rc === 0 || ntpstat.rc === 1)) {
    return { daemon: 'ntpd', synced: ntpstat.rc === 0, state: ntpstat.text.trim().split('\n')[0] ?? '' };
  }
  if (ntpq && ntpq.rc === 0) {
    const peer = ntpq.text.split('\n').find((l) => l.startsWith('*'));
    return peer
      ? { daemon: 'ntpd', synced: true, state: `system peer ${peer.slice(1).trim().split(/\s+/)[0]}` }
      : { daemon: 'ntpd', synced: false, state: 'no system peer (no `*` in ntpq -pn)' };
  }
  return { daemon: 'ntpd', synced: null, state: `ntpq failed: ${ntpq?.text.trim().split('\n').pop() ?? 'not installed'}` };
}

const INSTALL = 'apt-get install -y chrony (Debian/Ubuntu; it starts itself) or dnf install -y chrony && systemctl enable --now chronyd (RHEL, Amazon Linux); or systemctl enable --now systemd-timesyncd';

/** The verdict on TIME_SYNC_COMMAND's output; pure. */
export function judgeTimeSync(output: string): Finding {
  const s = parseSections(output);
  const expected = 'a time daemon (chronyd, systemd-timesyncd or ntpd) running and synchronised';
  const running = (s.get('daemons') ?? '').split('\n').map((l) => l.trim()).filter((l): l is Daemon => (DAEMONS as readonly string[]).includes(l));
  const tdc = answer(s, 'timedatectl');
  const tdcFields = tdc && tdc.rc === 0 ? fields(tdc.text, /^([A-Za-z]+)=(.*)$/) : undefined;
  const ntpSynchronized = tdcFields?.get('NTPSynchronized');

  let state: TimeState | undefined;
  if (running.includes('chronyd')) state = judgeChrony(answer(s, 'chronyc') ?? { text: '', rc: null });
  else if (running.includes('ntpd')) state = judgeNtp(answer(s, 'ntpstat'), answer(s, 'ntpq'));
  else if (running.includes('systemd-timesyn')) {
    state =
      ntpSynchronized === undefined
        ? { daemon: 'systemd-timesyncd', synced: null, state: `timedatectl failed: ${tdc?.text.trim().split('\n').pop() ?? 'no systemd'}` }
        : { daemon: 'systemd-timesyncd', synced: ntpSynchronized === 'yes', state: `NTPSynchronized=${ntpSynchronized}` };
  }

  if (!state) {
    if (ntpSynchronized === 'yes') {
      return {
        status: 'warn',
        observed: 'no time daemon running; the kernel still reports synchronised (NTPSynchronized=yes)',
        expected,
        remedy: INSTALL,
        detail: `a daemon kept the clock until recently (or runs where /proc hides it); without one the clock drifts. ${SOURCE}`,
      };
    }
    return {
      status: 'fail',
      observed: `no time daemon running (chronyd, ntpd, systemd-timesyncd)${ntpSynchronized ? `; NTPSynchronized=${ntpSynchronized}` : tdc ? '' : '; no systemd'}`,
      expected,
      remedy: INSTALL,
      detail: SOURCE,
    };
  }
  const others = running.filter((d) => DAEMON_NAME[d] !== state.daemon).map((d) => DAEMON_NAME[d]);
  const observed = `${state.daemon}: ${state.synced === null ? 'cannot tell' : state.synced ? 'synchronised' : 'not synchronised'} (${state.state})${others.length > 0 ? `; also running: ${others.join(', ')}` : ''}`;
  if (state.synced === null) return { status: 'error', observed, expected, detail: `${state.daemon} runs but did not answer. ${SOURCE}` };
  if (!state.synced) {
    const why = state.daemon === 'chronyd' ? 'chronyc -n sources -v' : state.daemon === 'ntpd' ? 'ntpq -pn' : 'timedatectl timesync-status';
    return {
      status: 'fail',
      observed,
      expected,
      remedy: `see why with \`${why}\` (no reachable server? outbound UDP 123 blocked by the provider's firewall?), fix the servers, and check again (a daemon that just started needs up to a minute)`,
      detail: SOURCE,
    };
  }
  if (others.length > 0) {
    return {
      status: 'warn',
      observed,
      expected: `${expected}, only one`,
      // chrony.service has the alias chronyd.service on Debian too; Debian's ntpsec answers to ntpsec.
      remedy: others.map((o) => `systemctl disable --now ${o}${o === 'ntpd' ? ' (Debian: ntpsec)' : ''}`).join('; '),
      detail: `two daemons steer the same clock against each other. ${SOURCE}`,
    };
  }
  return { status: 'pass', observed, expected, detail: SOURCE };
}
