#!/usr/bin/env bash
# Companion of scripts/gpu.sh, run HERE (Debian, with scripts/install_deps.sh done): copies the
# dependencies the GPU build needs besides LibTorch (Eigen, fmt, Catch2, Google Benchmark, stb, CLI11, nlohmann-json, zlib: headers,
# CMake package files and their few libraries) into the git-ignored _deps/prefix, laid out like /usr
# so their relocatable CMake configs work there. The GPU machine has no network; the folder travels
# with the working tree (carry: ["_deps"]). Libraries need glibc >= 2.33 on the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(libeigen3-dev libfmt-dev libfmt9 catch2 libbenchmark-dev libbenchmark1debian libstb-dev libstb0 libcli11-dev nlohmann-json3-dev zlib1g-dev zlib1g)
dest=_deps/prefix
rm -rf "$dest"
mkdir -p "$dest"
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || { echo "gpu_deps: $p missing; run scripts/install_deps.sh" >&2; exit 1; }
  dpkg -L "$p" | while read -r f; do
    case "$f" in /usr/share/doc/*|/usr/share/man/*) continue ;; esac
    if [ -f "$f" ] || [ -L "$f" ]; then
      mkdir -p "$dest$(dirname "${f#/usr}")"
      cp -a "$f" "$dest${f#/usr}"
    fi
  done
done
# Absolute symlinks (e.g. libz.so -> /lib/.../libz.so.1.2.13) would point outside the folder there:
# relink them to the copy beside them.
find "$dest" -type l | while read -r link; do
  target=$(readlink "$link")
  case "$target" in
    /*) [ -e "$(dirname "$link")/$(basename "$target")" ] && ln -sfn "$(basename "$target")" "$link" ;;
  esac
done
echo "gpu_deps: $(du -sh "$dest" | cut -f1) in $dest"
