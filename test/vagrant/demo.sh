#!/usr/bin/env bash
# `make demo`: boot the local test VM (plain QEMU, SSH forwarded on 127.0.0.1 only), run prep-node
# against it over SSH through an ssh_config alias as a user would, print the report, tear it down
# (the trap runs on success, failure and Ctrl-C).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
prep_node=(node "$repo/dist/src/cli.js")
state=$(mktemp -d /tmp/prep-node-demo.XXXXXX)

cleanup() {
  "$here/qemu.sh" down "$state" >/dev/null 2>&1 || true
  rm -rf "$state"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== booting the Debian 12 test VM (first run builds the image: a few minutes) =="
echo "   (the harness reports the image, the accelerator probe and the boot itself as three figures)"
"$here/qemu.sh" up "$state" --owner-pid $$ >/dev/null
field() { node -e 'const t=require(process.argv[1]); console.log(t[process.argv[2]])' "$state/target.json" "$1"; }

cat > "$state/ssh_config" <<CONF
Host demo-vm
  HostName $(field host)
  Port $(field port)
  User root
  IdentityFile $(field identity)
  IdentitiesOnly yes
  IdentityAgent none
  UserKnownHostsFile $state/demo_known_hosts
  GlobalKnownHostsFile /dev/null
CONF

# show [--expect CODE WHY] ARGS...: run prep-node ARGS; a CODE that the demo causes on purpose is said so.
show() {
  local expect='' why=''
  if [[ $1 == --expect ]]; then expect=$2 why=$3; shift 3; fi
  echo
  echo "\$ prep-node $*"
  local rc=0
  "${prep_node[@]}" "$@" || rc=$?
  if [[ -n $expect && $rc == "$expect" ]]; then echo "(exit $rc, on purpose: $why)"; else echo "(exit $rc)"; fi
  # 0, 1 (findings) and 3 (the refused host key, on purpose) are the demo; 2, 5, 6 or 70 is a bug.
  [[ $rc != 2 && $rc != 5 && $rc != 6 && $rc != 70 ]]
}
echo "== ssh_config =="
cat "$state/ssh_config"
show --expect 3 "the VM's host key is not in known_hosts yet, so it is refused; the next command trusts it" \
  check -F "$state/ssh_config" demo-vm
show --expect 1 "findings on a fresh VM; apply below fixes what a tuner can" check -F "$state/ssh_config" --accept-new-host-key demo-vm
show --expect 1 "the same findings on the VM, and the fleet checks name what differs between the VM and this machine (kernel, machine-id, ...)" \
  check -F "$state/ssh_config" prep@demo-vm local
echo
echo "== tune it: plan, apply (journaled), apply again (nothing to do), check, roll back =="
show apply -F "$state/ssh_config" --dry-run prep@demo-vm
show apply -F "$state/ssh_config" prep@demo-vm
show apply -F "$state/ssh_config" prep@demo-vm
show --expect 1 "what is left after apply needs a kernel, a reboot or the provider; each finding names its fix" \
  check -F "$state/ssh_config" --steal-seconds 1 prep@demo-vm
show rollback -F "$state/ssh_config" prep@demo-vm
echo
echo "== the eBPF datapath: self-test on the node with real traffic, in namespaces it removes =="
show datapath selftest -F "$state/ssh_config" prep@demo-vm
echo
echo "== the same profile for nodes that do not exist yet =="
show cloud-init --profile k8s-worker
