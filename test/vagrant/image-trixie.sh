#!/usr/bin/env bash
# The Debian 13 (trixie) guest: image.sh's recipe on trixie (same users, keys, boot and cache
# layout; cached under its own key). Usage and output as image.sh; qemu.sh up --image trixie.
set -euo pipefail
PREP_NODE_VM_SUITE=trixie exec "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/image.sh" "$@"
