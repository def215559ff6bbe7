#!/usr/bin/env bash
# `make sea`: the agent as one executable for nodes without Node.js (Node's single executable
# application). The compiled CLI (dist/src) is bundled into one CommonJS script (esbuild; a SEA's main
# script is CommonJS and its require takes built-in modules only), turned into a blob by node itself and
# injected into a copy of this node binary with postject. Beside it in dist/sea/: the static datapath
# loader with its build-time sha256, and koffi's native module (a blob cannot hold a .node file that
# require could load; `prep-node agent install` puts all of them in one root-owned directory).
set -euo pipefail
cd "$(dirname "$0")/.."

out=dist/sea
fuse=NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2 # node's documented sentinel (doc/api/single-executable-applications.md)
node_bin=$(command -v node)

fail() {
  echo "build-sea: $1" >&2
  exit 1
}
[[ -f dist/src/cli.js ]] || fail "dist/src/cli.js is missing: run \`make build\` first"
[[ -f bpf/build/prep-node-dp.sha256 ]] || fail "bpf/build/prep-node-dp is missing: run \`make -C bpf\` first"
grep -q "$fuse" "$node_bin" || fail "$node_bin has no SEA fuse (a distribution's node built without single executable support): use the nodejs.org or NodeSource build"

rm -rf "$out"
mkdir -p "$out"
# import.meta.url has no meaning in a CommonJS bundle: a file URL of the bundle stands in, so the
# package-relative paths computed at load stay well-formed (the SEA's own files come from src/sea.ts).
# ssh2 and cpu-features try optional native modules, ws and node-fetch optional packages (bufferutil,
# utf-8-validate, encoding), in try/catch and fall back to JS: in the bundle such a require throws at
# once (a SEA's require would print a warning on every start before refusing them).
# shellcheck disable=SC2016 # JavaScript, not shell
node --input-type=module -e '
import { build } from "esbuild";
const noNative = { name: "no-native", setup(b) {
  b.onResolve({ filter: /\.node$|^(bufferutil|utf-8-validate|encoding)$/ }, (a) => ({ path: a.path, namespace: "no-native" }));
  b.onLoad({ filter: /.*/, namespace: "no-native" }, (a) => ({ contents: `throw new Error(${JSON.stringify(a.path + " is not in the single executable")});` }));
} };
await build({
  entryPoints: ["dist/src/cli.js"], bundle: true, platform: "node", format: "cjs", target: "node20", logLevel: "warning",
  define: { "import.meta.url": "__importMetaUrl" },
  banner: { js: "var __importMetaUrl = require(\"node:url\").pathToFileURL(__filename).href;" },
  plugins: [noNative], outfile: process.argv[1],
});' "$out/prep-node.cjs"
cat >"$out/sea-config.json" <<JSON
{
  "main": "$out/prep-node.cjs",
  "output": "$out/prep-node.blob",
  "disableExperimentalSEAWarning": true,
  "assets": { "package.json": "package.json" }
}
JSON
node --experimental-sea-config "$out/sea-config.json" >/dev/null 2>&1 || node --experimental-sea-config "$out/sea-config.json"
cp "$node_bin" "$out/prep-node"
chmod u+w "$out/prep-node"
# postject warns "Can't find string offset for section name '.note...'" on ELF binaries (harmless, as
# node's docs say): its output is shown only when it fails
log=$(npx postject "$out/prep-node" NODE_SEA_BLOB "$out/prep-node.blob" --sentinel-fuse "$fuse" 2>&1) || fail "postject: $log"
rm "$out/prep-node.blob" "$out/sea-config.json"

koffi=node_modules/koffi/build/koffi/$(node -p 'process.platform + "_" + process.arch')/koffi.node
cp "$koffi" "$out/koffi.node"
# libbpf and the libelf it needs, from this machine's libbpf1 and libelf1 (install-deps.sh): a node
# without them runs the agent all the same (libz and libc are on every Debian and Ubuntu)
for lib in libbpf.so.1 libelf.so.1; do
  path=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64|AArch64/ { print $NF; exit }')
  [[ -n $path ]] || fail "$lib is not installed: run \`make deps\` (apt packages libbpf1 libelf1)"
  cp -L "$path" "$out/$lib"
done
cp bpf/build/prep-node-dp "$out/prep-node-dp"
cp bpf/build/prep-node-dp.sha256 "$out/prep-node-dp.sha256"
(cd "$out" && sha256sum --quiet -c prep-node-dp.sha256 && sha256sum prep-node koffi.node libbpf.so.1 libelf.so.1 prep-node-dp >SHA256SUMS)
echo "build-sea: $out/prep-node ($(du -m "$out/prep-node" | cut -f1) MB) with koffi.node, libbpf, libelf and prep-node-dp beside it"
