#!/usr/bin/env bash
# The Vulkan tests on the lent GPU machine (after bench/gpu-prepare.sh here):
#   run(command="bash bench/gpu-tests.sh", carry=[".gl", ".gpu"])
# Runs each test binary .gpu/bin holds against the GPU's Vulkan driver, with the
# reference fixtures carried in .gpu/shared; prints one PASS/FAIL line per test
# and a count; the logs land in $OUT/tests.log. test_vk_fallback is not run there: it checks
# what happens without a driver or with lavapipe alone, which is CI's setting.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/radfuse-gpu}
mkdir -p "$out"
if ! ldconfig -p | grep -q libvulkan.so.1; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
nv=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[[ -f $nv ]] && export VK_DRIVER_FILES=$nv
export LD_LIBRARY_PATH=$PWD/.gpu/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
[[ -d .gpu/lib ]] || tar -C .gpu -xJf .gpu/lib.tar.xz
export DCMDICTPATH=$PWD/.gpu/share/dicom.dic
export RADFUSE_SHARED=$PWD/.gpu/shared RADFUSE_SOURCE=$PWD RADFUSE_BIN=$PWD/.gpu/bin/radfuse
pass=0 fail=0
for t in .gpu/bin/test_*; do
  name=$(basename "$t")
  start=$(date +%s.%N)
  # test_vk_gemm holds fp16 linears to fp32 activations (gemm_f16w); on a
  # tensor-core device they round the activations too: test_vk_coopmat checks that path
  env=()
  [[ $name == test_vk_gemm ]] && env=(RADFUSE_VK_COOPMAT=0)
  env "${env[@]}" "$t" >"$out/$name.log" 2>&1
  rc=$?
  secs=$(echo "$(date +%s.%N) - $start" | bc 2>/dev/null || echo "?")
  if [[ $rc -eq 0 ]]; then pass=$((pass + 1)); s=PASS; else fail=$((fail + 1)); s="FAIL (exit $rc)"; fi
  echo "$s $name (${secs}s)"
  grep -Ei 'max abs|error|vulkan|device|coop|tflop|not run' "$out/$name.log" | head -40 | sed 's/^/    /'
  { echo "=== $name: $s"; cat "$out/$name.log"; } >>"$out/tests.log"
  rm -f "$out/$name.log"
done
echo "gpu-tests: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
