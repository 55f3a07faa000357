#!/usr/bin/env bash
# Installs what diffinstruct needs from Debian 12's packages, skipping what is already there.
# Run as root (or with sudo available). Prints which BLAS LibTorch will use.
set -euo pipefail

packages=(
  cmake g++ make ccache pkg-config
  libtorch-dev libopenblas0-pthread   # LibTorch 1.13 (CPU) + a fast BLAS: without it matmuls run 10-20x slower
  libtcmalloc-minimal4                # the programs' malloc with LibTorch 1.13: a 13% shorter real-size step (docs/performance.md)
  libeigen3-dev libfmt-dev            # the package config's dependencies
  catch2                              # tests
  libcli11-dev nlohmann-json3-dev libstb-dev  # example programs
  zlib1g-dev dataset-fashion-mnist     # the Fashion-MNIST miniature (IDX files, gzip)
  python3-torch                       # models exported from Python (TorchScript test), Python reference loop
  libbenchmark-dev                    # benchmarks
  libgloo-dev                         # data-parallel training (headers of c10d's Gloo process group)
  clang-14 libclang-rt-14-dev         # libFuzzer targets for the file readers (scripts/fuzz.sh)
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if [ ${#missing[@]} -gt 0 ]; then
  echo "diffinstruct: installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "diffinstruct: all Debian packages present"
fi

blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || echo unknown)
echo "diffinstruct: libblas.so.3 -> ${blas}"
case "$blas" in
  *openblas*) ;;
  *) echo "diffinstruct: WARNING: LibTorch will use the reference BLAS (10-20x slower); run:" \
          "update-alternatives --set libblas.so.3-x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3" ;;
esac
