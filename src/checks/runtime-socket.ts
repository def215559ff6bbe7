// runtime.socket: a CRI runtime listens where the kubelet and kubeadm look. kubeadm probes its known
// endpoints (cmd/kubeadm/app/util/runtime: containerd, CRI-O, cri-dockerd) and refuses both none
// ("unable to find a container runtime") and several ("found multiple CRI endpoints on the host.
// Please define which one do you wish to use by setting the 'criSocket' field").
import type { Check, Finding } from './types.js';
import { CRI_SOCKETS, nodeFacts } from '../probes/node-facts.js';

const SOURCE = "kubeadm detects the CRI socket among its known endpoints (util/runtime DetectCRISocket) and fails with none found or 'found multiple CRI endpoints on the host'";

export const runtimeSocket: Check = {
  id: 'runtime.socket',
  title: 'Container runtime socket',
  async run(ctx): Promise<Finding> {
    return judgeRuntimeSocket((await nodeFacts(ctx, ctx.profile.preflight.diskPath)).sockets);
  },
};

/** The verdict on which known CRI sockets exist; pure. /run and /var/run are one directory on every systemd distribution. */
export function judgeRuntimeSocket(sockets: readonly string[]): Finding {
  const expected = `one CRI socket: ${CRI_SOCKETS.filter((s) => s.startsWith('/var/run')).join(', ')}`;
  const runtimes = [...new Set(sockets.map((s) => s.replace(/^\/var\/run\//, '/run/')))];
  if (runtimes.length === 0) {
    return {
      status: 'fail',
      observed: 'no CRI socket',
      expected,
      remedy: 'apt-get install -y containerd (Debian/Ubuntu) or dnf install -y containerd.io (Docker\'s repository) and set SystemdCgroup = true in /etc/containerd/config.toml; then systemctl enable --now containerd',
      detail: SOURCE,
    };
  }
  const observed = runtimes.join(', ');
  if (runtimes.length > 1) {
    return { status: 'warn', observed, expected, remedy: 'stop the runtime you do not use (systemctl disable --now crio|containerd|cri-docker) or pass criSocket to kubeadm', detail: SOURCE };
  }
  return { status: 'pass', observed, expected, detail: SOURCE };
}
