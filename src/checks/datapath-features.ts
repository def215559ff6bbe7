// datapath.features: what the node's kernel does for the datapath, probed by the loader
// (`prep-node-dp features`: program and attach types, helpers, map types, batch map operations,
// clsact and cls_bpf tried in a throwaway network namespace), not guessed from the version: an EL
// kernel with backports says 4.18 and has much of 5.x. Missing features fail (install would refuse);
// features the datapath works without but behaves differently warn, saying what changes.
//
// Data: one host.run (sudo) that runs `features` with the newest loader prep-node uploaded to
// /var/lib/prep-node/bin (datapath install/selftest put it there); without one the check is skipped
// and says how to get it: `check` itself uploads nothing.
import { REMOTE_BIN_DIR } from '../datapath/loader.js';
import type { Check, Finding } from './types.js';

/** Prints the features document, or `::no-loader` when no uploaded loader has the command. */
export const FEATURES_COMMAND =
  `for f in $(ls -t ${REMOTE_BIN_DIR}/prep-node-dp-* 2>/dev/null); do ` +
  `[ -x "$f" ] && out=$("$f" features 2>/dev/null) && { printf '%s\\n' "$out"; exit 0; }; done; echo ::no-loader`;

export const datapathFeatures: Check = {
  id: 'datapath.features',
  title: 'Kernel features the datapath uses (probed)',
  async run({ host }): Promise<Finding> {
    const r = await host.run(FEATURES_COMMAND, { sudo: true });
    return judgeFeatures(r.stdout, r.code === 0 ? '' : r.stderr);
  },
};

const EXPECTED = 'sock_addr hooks incl. getpeername4/recvmsg4, tc clsact + cls_bpf, ring buffer, LRU/LPM maps; set_retval and batch map ops';

interface FeaturesDoc {
  kernel: string;
  helpers: Record<string, boolean>;
  batch_ops: boolean;
  modules: Record<string, { present: string; works: boolean }>;
  no_backend_errno: string;
  missing: string[];
  degraded: string[];
}

function parse(out: string): FeaturesDoc | undefined {
  try {
    const d = JSON.parse(out) as Partial<FeaturesDoc>;
    if (typeof d.kernel !== 'string' || !Array.isArray(d.missing) || !Array.isArray(d.degraded) || typeof d.modules !== 'object' || typeof d.helpers !== 'object') return undefined;
    if (![...d.missing, ...d.degraded].every((s) => typeof s === 'string')) return undefined;
    return d as FeaturesDoc;
  } catch {
    return undefined;
  }
}

/** The verdict on the command's output; pure. */
export function judgeFeatures(stdout: string, stderr = ''): Finding {
  const out = stdout.trim();
  if (out === '::no-loader') {
    return {
      status: 'skip',
      observed: `no prep-node datapath loader with the features command in ${REMOTE_BIN_DIR}`,
      expected: EXPECTED,
      remedy: 'run `prep-node datapath selftest <host>` (uploads the loader, installs nothing lasting), then check again',
      detail: 'the features are probed by the loader on the node itself; check does not upload it',
    };
  }
  const d = parse(out);
  if (!d) return { status: 'error', observed: (out || stderr.trim() || '(no output)').slice(0, 300), expected: EXPECTED, detail: 'the loader\'s features document could not be read' };
  const mods = Object.entries(d.modules).map(([m, s]) => `${m} ${s.present}${s.works ? '' : ' (does not work)'}`).join(', ');
  if (d.missing.length) {
    const modulesOnly = d.missing.every((m) => m in d.modules);
    return {
      status: 'fail',
      observed: `${d.kernel}: missing ${d.missing.join(', ')}`,
      expected: EXPECTED,
      remedy: modulesOnly
        ? 'install the kernel\'s module package (Ubuntu: apt-get install linux-modules-extra-$(uname -r); Debian and EL ship sch_ingress and cls_bpf with the kernel), then `modprobe sch_ingress cls_bpf`'
        : 'boot a kernel that has them: mainline Linux 5.8 or newer (Debian >= 11, Ubuntu >= 20.10); an EL kernel has what this check finds, whatever its version says',
      detail: `the datapath cannot install without these (tc: ${mods})`,
    };
  }
  if (d.degraded.length) {
    return {
      status: 'warn',
      observed: `${d.kernel}: ${d.degraded.join('; ')}`,
      expected: EXPECTED,
      remedy: 'nothing to fix for the datapath to run; a kernel that has them (mainline 5.18+: Debian >= 12, Ubuntu >= 24.04) behaves as described',
      detail: `everything required works (tc: ${mods})`,
    };
  }
  return {
    status: 'pass',
    observed: `${d.kernel}: all probed; a Service without backends gives ${d.no_backend_errno}; batch map ops; tc: ${mods}`,
    expected: EXPECTED,
  };
}
