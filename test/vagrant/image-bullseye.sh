#!/usr/bin/env bash
# The Debian 11 (bullseye) guest: image.sh's recipe on bullseye (same users, keys, boot and cache
# layout; cached under its own key). Usage and output as image.sh; qemu.sh up --image bullseye.
set -euo pipefail
PREP_NODE_VM_SUITE=bullseye exec "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/image.sh" "$@"
