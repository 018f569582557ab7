# The two commands of the README, and their parts.
#   make demo   install what is missing, build, run the demo
#   make test   install what is missing, build with -Werror, run the whole suite,
#               then again under AddressSanitizer + UndefinedBehaviorSanitizer with
#               the Khronos validation layer on every Vulkan test (any message fails),
#               then the DICOM shim under libFuzzer for FUZZ_SECONDS (tests/fuzz/run.sh)
JOBS ?= $(shell nproc)

.PHONY: all deps build demo test test-release test-sanitize test-fuzz bench bench-decode clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	@cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build build -j $(JOBS)

# a real read of the sample study (datasets/samples/covid-442: a CC BY 4.0 row of the
# COVID-19 image data collection, its note and labs) with the committed default model
DEMO_SAMPLE = datasets/samples/covid-442
demo: build
	./build/radfuse read $(DEMO_SAMPLE)/study --notes $(DEMO_SAMPLE)/note.txt --labs $(DEMO_SAMPLE)/labs.csv \
	  --model models/default --out build/demo
	@echo "open build/demo/report.html; overlays in build/demo/overlays/, DICOM objects in build/demo/dicom/"

test: test-release test-sanitize test-fuzz

test-release: deps
	cmake -S . -B build-test -G Ninja -DCMAKE_BUILD_TYPE=Release -DRADFUSE_WERROR=ON
	cmake --build build-test -j $(JOBS)
	ctest --test-dir build-test --output-on-failure -j $(JOBS)

test-sanitize: deps
	cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRADFUSE_WERROR=ON -DRADFUSE_SANITIZE=ON
	cmake --build build-asan -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  RADFUSE_VK_VALIDATION=1 ctest --test-dir build-asan --output-on-failure -j $(JOBS)

# libFuzzer over rf_dicom_read_memory (clang; ASan + UBSan; docs/imaging.md, Fuzzing):
# the regression inputs once, then FUZZ_SECONDS of fuzzing from the shared corpus.
# Any crash, leak, timeout or OOM fails and prints the reproducer's path.
FUZZ_SECONDS ?= 60
test-fuzz: deps
	cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRADFUSE_WERROR=ON -DRADFUSE_FUZZ=ON \
	  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++
	cmake --build build-fuzz -j $(JOBS) --target fuzz_dicom
	tests/fuzz/run.sh build-fuzz/fuzz_dicom $(FUZZ_SECONDS)

bench: build
	@scripts/install-deps.sh --bench
	bench/run.sh

# DICOM decode throughput against DCMTK's and GDCM's tools (bench/README.md)
bench-decode: build
	@scripts/install-deps.sh --bench
	bench/decode.sh

clean:
	rm -rf build build-test build-asan build-fuzz
