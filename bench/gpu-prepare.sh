#!/usr/bin/env bash
# Prepares the GPU benchmark (bench/gpu.sh) on this machine: builds radfuse
# (Release) and puts the binaries and the one shared library they need beside
# Debian's Vulkan loader packages, in folders git ignores, for the device tool
# to carry:   run(command="bash bench/gpu.sh", carry=[".gl", ".gpu"])
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target radfuse model_bench gemm_device_bench
rm -rf .gpu && mkdir -p .gpu/bin .gpu/lib
cp build/radfuse build/model_bench build/gemm_device_bench .gpu/bin/
cp -L /usr/lib/x86_64-linux-gnu/libcjson.so.1 .gpu/lib/
# the GPU machine has a driver but no Vulkan loader
mkdir -p .gl /tmp/amd64/partial
o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
apt-get $o update -q >/dev/null
(cd .gl && rm -f ./*.deb && apt-get $o download libvulkan1 2>&1 | grep -v unsandboxed || true)
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
for d in /.gl/ /.gpu/; do grep -qxF "$d" "$exclude" 2>/dev/null || echo "$d" >>"$exclude"; done
du -sh .gpu .gl
