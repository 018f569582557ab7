#!/usr/bin/env bash
# Installs the Debian 12 packages radfuse needs, and only those missing.
# Idempotent: prints the packages it installs; prints nothing when none is missing.
# Run as root (or with sudo available).
#   scripts/install-deps.sh          build and test dependencies
#   scripts/install-deps.sh --bench  also the benchmarks' peers (PyTorch with OpenBLAS, DCMTK and GDCM tools)
set -euo pipefail

packages=(
  gcc libc6-dev cmake ninja-build pkg-config   # toolchain (gcc only recommends libc6-dev)
  libcjson-dev                            # config.json and safetensors headers
  libvulkan-dev glslc                     # Vulkan headers and loader, GLSL -> SPIR-V
  mesa-vulkan-drivers vulkan-validationlayers  # lavapipe (Vulkan on the CPU) and validation, for tests
  g++ libdcmtk-dev                        # DICOM: DCMTK 3.6.7 and the C++ compiler for its shim
  libopenjp2-7-dev                        # DICOM JPEG 2000 (OpenJPEG; DCMTK 3.6.7 has no decoder)
  libzip-dev                              # DICOM .zip exports (libzip: archives read into memory)
  libutf8proc-dev                         # text: Unicode normalization and categories for the tokenizer
  libpng-dev libjpeg62-turbo-dev          # dicom export: PNG (libpng) and JPEG (libjpeg-turbo) writers
  libfftw3-dev                            # saliency: Gaussian smoothing of the maps by FFT (single-precision FFTW)
  libsqlite3-dev                          # batch: the state store (SQLite: crash-safe transactions, not a journal of our own)
  clang libclang-rt-14-dev llvm           # make test-fuzz: libFuzzer + ASan/UBSan runtimes, llvm-symbolizer
  dicom3tools                             # tests: dciodvfy validates the DICOM radfuse writes; dckey, dcdump, dcsrdump read it back
  orthanc curl                            # tests: a loopback Orthanc must accept radfuse's SC and SR objects (REST uploads with curl)
  python3 python3-jsonschema              # tests: result.json validated against docs/result.schema.json
  python3-sklearn                         # tests: tests/data/make_eval_expected.py (radfuse eval's metrics against sklearn)
  dcmtk sqlite3                           # tests: test_batch* transcode studies (dcmconv, dcmcjpeg, dcmcrle, dcmcjpls, dcmodify), read UIDs (dcmdump), query the batch state (sqlite3)
  chromium                                # tests: report.html loaded, its DOM dumped and a screenshot taken in headless Chromium
  slurm-wlm munge                         # tests: test_slurm runs scripts/slurm-batch.sh on a single-node Slurm (slurmctld, slurmd, client commands) it starts with its own munged
)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(python3 python3-numpy python3-torch libopenblas0-pthread)
  packages+=(libfftw3-dev)  # bench/resample_bench: the FFTW resampler it measures against
  # bench/decode.sh: DCMTK's and GDCM's command-line tools as peers, opj_compress for its corpus
  packages+=(dcmtk libgdcm-tools libopenjp2-tools time)
fi

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
if [[ $(id -u) -eq 0 ]]; then
  sudo=()
elif command -v sudo >/dev/null; then
  sudo=(sudo)
else
  echo "install-deps: not root and no sudo; install these packages: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
