#!/usr/bin/env bash
# Prepares the GPU benchmark (bench/gpu.sh) and the Vulkan tests' run on the
# GPU (bench/gpu-tests.sh) on this machine: builds radfuse (Release) in BUILD
# (default build/) and puts the binaries, the shared libraries they need that
# are not the C/C++ runtime, and the reference fixtures the tests read beside
# Debian's Vulkan loader package, in folders git ignores, for the device tool
# to carry:   run(command="bash bench/gpu.sh && bash bench/gpu-tests.sh", carry=[".gl", ".gpu"])
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
shared=${RADFUSE_SHARED:-../shared}
scripts/install-deps.sh
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
tests=(test_vk_gemm test_vk_attention test_vk_elementwise test_vk_vit test_vk_coopmat test_parity test_text_encoder
  test_fusion_vk test_grad_vk test_read)
have=()
for t in "${tests[@]}"; do [[ -f tests/$t.c ]] && have+=("$t"); done
cmake --build "$build" --target radfuse model_bench gemm_device_bench "${have[@]}"
rm -rf .gpu && mkdir -p .gpu/bin .gpu/lib .gpu/shared/fixtures
for b in radfuse model_bench gemm_device_bench "${have[@]}"; do cp "$build/$b" .gpu/bin/; done
# the GPU machine runs another distribution: take every library but the C and
# C++ runtimes along (bench/gpu.sh puts them on the path of radfuse's binaries only)
ldd .gpu/bin/* | awk '/=> \//{print $3}' | sort -u |
  grep -Ev '/(libc|libm|libdl|librt|libpthread|libgcc_s|libstdc\+\+|ld-linux-x86-64|libvulkan)\.so' |
  while read -r lib; do cp -L "$lib" .gpu/lib/; done
cp -r "$shared/fixtures/reference" "$shared/fixtures/tokenizer" .gpu/shared/fixtures/
# test_read: the covid-chestxray rows it builds studies from, and a CT for the mismatch case
covid=$shared/data/covid-chestxray
mkdir -p .gpu/shared/data/covid-chestxray/images .gpu/shared/data/dicom/pydicom-test-files
cp "$covid/metadata.csv" .gpu/shared/data/covid-chestxray/
python3 - "$covid/metadata.csv" 3 440 <<'PY' | while read -r f; do cp "$covid/images/$f" .gpu/shared/data/covid-chestxray/images/; done
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
for i in sys.argv[2:]:
    print(rows[int(i)]["filename"])
PY
cp "$shared/data/dicom/pydicom-test-files/CT_small.dcm" .gpu/shared/data/dicom/pydicom-test-files/
# DCMTK's data dictionary (the GPU machine has no DCMTK): gpu-tests.sh sets DCMDICTPATH
mkdir -p .gpu/share && cp /usr/share/libdcmtk*/dicom.dic .gpu/share/
# the GPU machine has a driver but no Vulkan loader, nor the GL dispatch
# libraries (glvnd) that NVIDIA's Vulkan driver library links
mkdir -p .gl /tmp/amd64/partial
o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
apt-get $o update -q >/dev/null
(cd .gl && rm -f ./*.deb && apt-get $o download libvulkan1 libglvnd0 libgl1 libglx0 libegl1 libopengl0 libgles2 2>&1 | grep -v unsandboxed || true)
if exclude=$(git rev-parse --git-path info/exclude 2>/dev/null); then # not in an exported snapshot
  mkdir -p "$(dirname "$exclude")"
  for d in /.gl/ /.gpu/; do grep -qxF "$d" "$exclude" 2>/dev/null || echo "$d" >>"$exclude"; done
fi
# the device tool carries 64 MiB with the tree: the libraries (ICU's data is
# 30 MB of them) travel compressed, and gpu.sh / gpu-tests.sh unpack them there
tar -C .gpu -cJf .gpu/lib.tar.xz lib && rm -rf .gpu/lib
du -sh .gpu .gl
