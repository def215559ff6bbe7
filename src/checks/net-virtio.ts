// net.virtio: the driver behind each physical interface. On KVM the paravirtual virtio-net NIC is the
// fast one; emulated NICs (e1000, rtl8139, QEMU's vmxnet3) cost a VM exit per register access and
// have a single queue (linux-kvm.org/page/Virtio; QEMU docs "Network emulation": virtio-net is the
// paravirtual device "for best performance").
import { worstStatus, type Check, type Finding, type Status } from './types.js';
import { netFacts, type NetFacts } from '../probes/net.js';

// NICs QEMU emulates in software: the Linux driver names of QEMU's -device e1000, e1000e, rtl8139,
// ne2k_pci, pcnet, tulip and vmxnet3 models.
const EMULATED = new Set(['e1000', 'e1000e', '8139cp', '8139too', 'ne2k-pci', 'pcnet32', 'tulip', 'vmxnet3']);

// Not virtio, but as good for this purpose: other hypervisors' paravirtual NICs and SR-IOV virtual
// functions, all multiqueue (AWS ENA, Google gVNIC, Hyper-V netvsc, Xen netfront, Mellanox and Intel VFs).
const PARAVIRTUAL = new Set(['ena', 'gve', 'hv_netvsc', 'vif', 'mlx4_core', 'mlx5_core', 'ixgbevf', 'iavf', 'i40evf', 'igbvf']);

const EXPECTED = 'virtio_net on every physical interface';

export const netVirtio: Check = {
  id: 'net.virtio',
  title: 'Paravirtual (virtio) NICs',
  async run(ctx): Promise<Finding> {
    return judgeVirtio(await netFacts(ctx));
  },
};

/** The verdict on the drivers of a node's physical interfaces. */
export function judgeVirtio(facts: NetFacts): Finding {
  if (facts.interfaces.length === 0) {
    return {
      status: 'error',
      observed: 'no physical interface (none in /sys/class/net has a device)',
      expected: EXPECTED,
      detail: 'cannot tell which NIC the node has: only virtual interfaces (lo, bridges, veth, tunnels) were found',
    };
  }
  const verdicts = facts.interfaces.map((i): { status: Status; text: string } => {
    const d = i.driver;
    if (d === null) return { status: 'error', text: `${i.name}: no driver bound` };
    if (d === 'virtio_net') return { status: 'pass', text: `${i.name}: virtio_net` };
    if (PARAVIRTUAL.has(d)) return { status: 'pass', text: `${i.name}: ${d} (paravirtual/SR-IOV, not virtio)` };
    if (EMULATED.has(d)) return { status: 'warn', text: `${i.name}: ${d} (emulated)` };
    return { status: 'warn', text: `${i.name}: ${d} (unrecognised)` };
  });
  const status = worstStatus(verdicts.map((v) => v.status));
  const observed = verdicts.map((v) => v.text).join('; ');
  const bad = facts.interfaces.filter((_, n) => verdicts[n]!.status !== 'pass').map((i) => i.name);
  if (status === 'pass') return { status, observed, expected: EXPECTED };
  if (status === 'error') {
    return {
      status,
      observed,
      expected: EXPECTED,
      remedy: `find the device's driver: ls -l /sys/class/net/${bad[0]}/device/ and dmesg | grep -i ${bad[0]}`,
      detail: 'an interface has a device but no driver bound to it (readlink /sys/class/net/IF/device/driver is empty): cannot tell what NIC it is',
    };
  }
  return {
    status,
    observed,
    expected: EXPECTED,
    remedy:
      `ask the provider to switch ${bad.join(', ')} to a virtio NIC (libvirt <model type='virtio'/>, Proxmox "VirtIO (paravirtualized)", ` +
      `OpenStack hw_vif_model=virtio), then reboot; check with: readlink /sys/class/net/${bad[0]}/device/driver`,
    detail:
      'an emulated NIC traps to the hypervisor on every register access and has one queue, so each packet costs host and guest CPU ' +
      'and all receive softirq work lands on one vCPU; virtio-net is KVM\'s paravirtual NIC with multiqueue and vhost-net ' +
      '(linux-kvm.org/page/Virtio; QEMU docs, "Network emulation"). An unrecognised driver may be fine (e.g. an SR-IOV function): check what it is',
  };
}
