#!/usr/bin/env bash
# Installs from Debian's archive what the build, the tests and the demo need, when it is missing.
# Everything comes from apt with --no-install-recommends (recommends pull in exim4, nfs, libguestfs).
set -euo pipefail

packages=(
  openssh-client openssh-server sudo            # SSH transport tests: a real sshd on 127.0.0.1
  iproute2 iptables util-linux e2fsprogs fdisk  # namespaces, loop devices, filesystems
  debootstrap qemu-system-x86 qemu-utils        # the Debian 12 test VM
  extlinux syslinux-common                      # a bootable disk for the Vagrant box
  vagrant vagrant-libvirt libvirt-daemon-system libvirt-clients dnsmasq-base
  shellcheck                                    # lint for the harness scripts
  clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev  # the eBPF datapath: BPF objects, skeletons, static libbpf
  libbpf1 libelf1                               # the agent binds libbpf.so.1 in-process (koffi); `make sea` ships both
  ethtool nftables                              # NIC channels on the test hosts; kube-proxy-style rule sets
  cloud-init genisoimage                        # `cloud-init schema` on emitted docs; NoCloud seed ISOs for the VM
  busybox-static kmod cpio                      # the kernel matrix: a minimal initramfs per Debian kernel
  umoci skopeo podman runc                      # `make image` (umoci), its test: load (skopeo) and run it (podman; runc: crun refuses hybrid cgroups)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
if [[ $(id -u) != 0 ]]; then
  echo "install-deps: missing ${missing[*]}; run as root (or: sudo apt-get install --no-install-recommends ${missing[*]})" >&2
  exit 2
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
# cloud-init is here for its schema validator only: never let it run at this machine's boot
# (it would probe for a cloud datasource on the network). The VM image gets its own copy.
if [[ " ${missing[*]} " == *" cloud-init "* ]]; then
  touch /etc/cloud/cloud-init.disabled
fi
