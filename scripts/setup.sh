#!/usr/bin/env bash
# Installs what smelt needs to build and test (Debian packages), only what is missing.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libzstd-dev libxxhash-dev libcjson-dev zlib1g-dev libssl-dev)
[ "${SMELT_SETUP_FUZZ:-0}" = 1 ] && pkgs+=(clang libclang-rt-14-dev)
# a headless browser for tests/test_sweep_html.sh (the sweep report rendered in chromium; CI sets it)
[ "${SMELT_SETUP_BROWSER:-0}" = 1 ] && pkgs+=(chromium)
# a single-node Slurm cluster for tests/test_slurm.sh (smelt sweep --slurm; CI sets it)
[ "${SMELT_SETUP_SLURM:-0}" = 1 ] && pkgs+=(slurmctld slurmd munge slurm-client)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
