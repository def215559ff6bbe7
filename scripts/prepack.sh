#!/usr/bin/env bash
# npm pack / npm publish run this first: the package ships the compiled CLI (dist/src) and the
# prebuilt static loader with its build-time sha256, so it must refuse to pack without them or with
# stale ones. It builds nothing itself: `make build` does.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "prepack: $1" >&2
  exit 1
}

[[ -f dist/src/cli.js ]] || fail "dist/src/cli.js is missing: run \`make build\` first"
stale=$(find src -name '*.ts' -newer dist/src/cli.js -print -quit)
[[ -z $stale ]] || fail "dist/ is older than $stale: run \`make build\` first"

loader=bpf/build/prep-node-dp
[[ -f $loader ]] || fail "$loader is missing: run \`make build\` (or \`make -C bpf loader\`) first"
[[ -f $loader.sha256 ]] || fail "$loader.sha256 is missing: run \`make -C bpf loader\` first"
stale=$(find bpf/loader bpf/lib bpf/include bpf/tc_lb.bpf.c bpf/sock_lb.bpf.c -newer "$loader" -print -quit)
[[ -z $stale ]] || fail "$loader is older than $stale: run \`make -C bpf loader\` first"
(cd bpf/build && sha256sum --quiet -c prep-node-dp.sha256) || fail "$loader does not match $loader.sha256: run \`make -C bpf loader\`"
# static: it runs on nodes with nothing installed
if command -v file >/dev/null && ! file -b "$loader" | grep -q 'statically linked'; then
  fail "$loader is not statically linked"
fi
