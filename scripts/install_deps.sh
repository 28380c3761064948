#!/usr/bin/env bash
# @brief Installs the Debian packages jumpflow needs, only those missing.
#
# Idempotent: when everything is present it prints nothing and exits 0.
# Runs apt-get (as root, or through sudo when available) for the missing ones.
set -euo pipefail

packages=(
  cmake make g++ pkg-config
  libabsl-dev libeigen3-dev libtbb-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  ccache gnuplot-nox wamerican
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "jumpflow: installing missing packages: ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo_cmd=(sudo)
  else
    echo "jumpflow: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "jumpflow: packages installed."
