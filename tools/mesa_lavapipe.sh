#!/usr/bin/env bash
# Mesa 25's lavapipe (Vulkan on the CPU) beside the system's Mesa, for Debian 12, whose own
# Mesa 22.3 runs darts-minus's kernels 1.3-1.5x slower (docs/performance.md, "Mesa 25").
# Nothing of the system's Mesa changes: the driver is unpacked into DIR and chosen through
# the Vulkan loader's VK_ICD_FILENAMES.
#
#   eval "$(tools/mesa_lavapipe.sh [DIR])"   # default DIR: ~/.cache/darts-minus/mesa-lavapipe
#   darts-minus devices                      # driver: llvmpipe Mesa 25.0.x
#
# Prints the two variables to export. Downloads once (needs root to add Debian's
# bookworm-backports to apt's sources where it is missing); later calls only print.
set -euo pipefail
dir="${1:-${XDG_CACHE_HOME:-$HOME/.cache}/darts-minus/mesa-lavapipe}"
suite=bookworm-backports
multiarch="$(gcc -print-multiarch 2>/dev/null || echo "$(uname -m)-linux-gnu")"
lib="$dir/root/usr/lib/$multiarch"

if [ ! -f "$dir/lvp_icd.json" ] || [ ! -f "$lib/libvulkan_lvp.so" ]; then
  codename="$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")"
  if [ "$codename" != bookworm ] || ! command -v apt-get >/dev/null; then
    echo "mesa_lavapipe.sh: this is for Debian 12 (bookworm); this system is" \
      "'${codename:-unknown}': install its own Mesa 25 or newer lavapipe instead" \
      "(Debian 13, Ubuntu 25.04: apt-get install mesa-vulkan-drivers)" >&2
    exit 1
  fi
  if ! grep -rqs "$suite" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    if [ "$(id -u)" != 0 ]; then
      echo "mesa_lavapipe.sh: Debian's $suite is not in apt's sources; run this once as root" >&2
      exit 1
    fi
    cat > /etc/apt/sources.list.d/darts-minus-backports.sources <<EOF
Types: deb
URIs: http://deb.debian.org/debian
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  fi
  echo "mesa_lavapipe.sh: fetching mesa-vulkan-drivers from $suite into $dir" >&2
  apt-get update -qq >&2
  debs="$(mktemp -d)"
  # apt's download sandbox user must be able to write there.
  chmod 777 "$debs"
  # The driver and the libdrm it needs (newer than Debian 12's); lavapipe needs nothing else.
  (cd "$debs" && apt-get download -qq "mesa-vulkan-drivers/$suite" "libdrm2/$suite" >&2)
  rm -rf "$dir/root"
  mkdir -p "$dir/root"
  for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$dir/root"; done
  rm -rf "$debs"
  if [ ! -f "$lib/libvulkan_lvp.so" ]; then
    echo "mesa_lavapipe.sh: the package held no $lib/libvulkan_lvp.so" >&2
    exit 1
  fi
  api="$(sed -n 's/.*"api_version": *"\([^"]*\)".*/\1/p' \
    "$dir/root/usr/share/vulkan/icd.d/lvp_icd.json" | head -n1)"
  cat > "$dir/lvp_icd.json" <<EOF
{
    "ICD": {
        "api_version": "${api:-1.3.0}",
        "library_path": "$lib/libvulkan_lvp.so"
    },
    "file_format_version": "1.0.0"
}
EOF
fi
echo "export VK_ICD_FILENAMES=$dir/lvp_icd.json"
echo "export LD_LIBRARY_PATH=$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
