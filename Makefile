# ringworld: a thin wrapper over CMake.
#   make demo    install what is missing (Debian/Ubuntu), build, run the main job on its embedded
#                default (jobs/demo.sh: context extension 512 -> 2K -> 8K, needle evaluation; runs/demo)
#   make demo-vision  the vision demo (jobs/demo_vision.sh: a visual needle in long synthetic videos)
#   make test    install what is missing (Debian/Ubuntu), build, run the whole test suite
#   make deps    install missing Debian packages (idempotent; says what it installs; Debian only)
#   make build   configure and build (Release) in $(BUILD_DIR); installs nothing (clusters: load
#                modules or Spack packages first, see README "Build on a cluster")
# On a machine without dpkg-query (RHEL, SLES, Cray, ...) `make test` and `make demo` skip the
# package step with a note and build with what CMake finds.
#   make bench   kernel and ring benchmarks (parseable tables; see perf/)
#   make build-cuda, build-hip, test-gpu-build   the GPU backends (device/cuda/README.md)
#   make clean   remove $(BUILD_DIR)
BUILD_DIR ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
# Tests run side by side: most wait on mpirun start-up and small files; an MPI test that wants more
# ranks than TEST_JOBS runs alone (ctest PROCESSORS), so oversubscription stays as each test states.
TEST_JOBS ?= $(JOBS)
CMAKE_FLAGS ?=

DEB_PACKAGES := openmpi-bin libopenmpi-dev libhdf5-openmpi-dev hdf5-tools \
                libboost-program-options-dev catch2 libopenblas-dev cmake pkg-config g++ make \
                libsentencepiece-dev sentencepiece zlib1g-dev libzstd-dev libsimdjson-dev
# JSON and CRC-32 for the run directory and metrics, msgpack for LWM's JAX checkpoints; strace for
# the run-directory test's fsync check.
DEB_PACKAGES += nlohmann-json3-dev strace libmsgpack-cxx-dev
# PNG and JPEG frames for `ringworld vqgan`.
DEB_PACKAGES += libpng-dev libjpeg-dev
# Video frames (read any video, write MP4 / animated GIF) for `ringworld vqgan` and `prepare --vision`.
DEB_PACKAGES += libavformat-dev libavcodec-dev libswscale-dev libavutil-dev libgif-dev

# Slurm and munge for the job test (tests/integration/slurm_stages.sh), installed by `make test`;
# optional: where they cannot be installed that test is skipped, saying so.
SLURM_PACKAGES := slurm-wlm munge

.PHONY: all build deps deps-if-debian test bench demo demo-vision clean

all: build

# deps-if-debian: `make deps` where dpkg-query exists, a note elsewhere (test and demo use it).
deps-if-debian:
	@if command -v dpkg-query >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory deps DEB_PACKAGES="$(DEB_PACKAGES)"; \
	else \
	  echo "deps: no dpkg-query here (not Debian/Ubuntu): not installing packages; CMake uses what it finds"; \
	  echo "deps: (see README 'Build on a cluster' for module loads and the CMake variables)"; \
	fi

deps:
	@command -v dpkg-query >/dev/null 2>&1 || { \
	  echo "deps: make deps installs Debian/Ubuntu packages and needs dpkg-query and apt-get;"; \
	  echo "deps: elsewhere load the dependencies (modules, Spack) and run make build (README 'Build on a cluster')"; \
	  exit 1; }
	@missing=""; \
	for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "deps: all Debian packages present"; exit 0; fi; \
	echo "deps: installing:$$missing"; \
	SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
	$$SUDO apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null && \
	echo "deps: done"

$(BUILD_DIR)/CMakeCache.txt:
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j $(JOBS)

# A build directory configured with tests off would otherwise run stale test binaries.
test: deps-if-debian
	@$(MAKE) --no-print-directory build
	-@$(MAKE) --no-print-directory deps-if-debian DEB_PACKAGES="$(SLURM_PACKAGES)"
	@grep -q '^RINGWORLD_TESTS:BOOL=ON' $(BUILD_DIR)/CMakeCache.txt || \
	  { cmake -S . -B $(BUILD_DIR) -DRINGWORLD_TESTS=ON >/dev/null && cmake --build $(BUILD_DIR) -j $(JOBS); }
	@bash tests/run_suite.sh $(BUILD_DIR) $(TEST_JOBS) $(if $(NVCC),1,0)

bench: build
	cmake --build $(BUILD_DIR) --target bench

# ---- GPU builds (device/cuda/README.md) ---------------------------------------------------------
#   make build-cuda      the project with the CUDA backend in build-cuda (CUDA_ARCHS, default 80;90)
#   make build-hip       the project with the HIP backend in build-hip (HIP_ARCHS, default gfx90a;
#                        installs Debian's hipcc / libamdhip64-dev when missing)
#   make test-gpu-build  compile-only checks with the toolchains present here, one architecture
#                        each (sm_90, gfx90a): the GPU objects (-Werror), the resource reports (no
#                        register spills), the GPU test binaries (skip, 77, without a device).
#                        `make test` runs it when nvcc or hipcc is found (about 3 min on 2 cores).
# The SIMT emulation (libboost-context-dev) runs every GPU kernel in the ordinary build's tests.
DEB_PACKAGES += libboost-context-dev
HIP_PACKAGES := hipcc libamdhip64-dev
CUDA_ARCHS ?= 80;90
HIP_ARCHS ?= gfx90a
NVCC ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
GPU_CHECK_DIR ?= build-gpu-check

.PHONY: build-cuda build-hip test-gpu-build

build-cuda: deps
	cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DRINGWORLD_CUDA=ON \
	  $(if $(NVCC),-DCMAKE_CUDA_COMPILER=$(NVCC)) "-DCMAKE_CUDA_ARCHITECTURES=$(CUDA_ARCHS)" $(CMAKE_FLAGS)
	cmake --build build-cuda -j $(JOBS)

build-hip: deps
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="$(HIP_PACKAGES)"
	cmake -S . -B build-hip -DCMAKE_BUILD_TYPE=Release -DRINGWORLD_HIP=ON "-DRINGWORLD_HIP_ARCHITECTURES=$(HIP_ARCHS)" \
	  $(CMAKE_FLAGS)
	cmake --build build-hip -j $(JOBS)

# GPU_CHECK_VENDORS: which compile checks test-gpu-build runs (make test: cuda only, where nvcc is
# present, to keep CI under 30 minutes; hip too where there is no nvcc).
GPU_CHECK_VENDORS ?= cuda hip
test-gpu-build: deps
	-@$(MAKE) --no-print-directory deps DEB_PACKAGES="$(HIP_PACKAGES)"
	@flags=""; targets=""; \
	if [ -n "$(NVCC)" ] && echo "$(GPU_CHECK_VENDORS)" | grep -qw cuda; then flags="$$flags -DRINGWORLD_CUDA=ON -DCMAKE_CUDA_COMPILER=$(NVCC) -DCMAKE_CUDA_ARCHITECTURES=90"; \
	  targets="$$targets test_gpu_cuda"; else echo "test-gpu-build: no nvcc: CUDA compile check skipped"; fi; \
	if command -v hipcc >/dev/null 2>&1 && echo "$(GPU_CHECK_VENDORS)" | grep -qw hip; then flags="$$flags -DRINGWORLD_HIP=ON -DRINGWORLD_HIP_ARCHITECTURES=gfx90a"; \
	  targets="$$targets test_gpu_hip"; else echo "test-gpu-build: no hipcc: HIP compile check skipped"; fi; \
	if [ -z "$$targets" ]; then exit 0; fi; \
	cmake -S . -B $(GPU_CHECK_DIR) -DCMAKE_BUILD_TYPE=Release -DRINGWORLD_BENCH=OFF -DRINGWORLD_GPU_EMU=OFF \
	  $$flags $(CMAKE_FLAGS) >/dev/null && \
	cmake --build $(GPU_CHECK_DIR) -j $(JOBS) --target $$targets && \
	cd $(GPU_CHECK_DIR) && ctest -L gpu -j $(JOBS) --output-on-failure

# The demo needs only the ringworld binary, and gnuplot for its PNG heatmaps (optional: without
# it the tables and CSVs are still written).
demo: deps-if-debian
	-@$(MAKE) --no-print-directory deps-if-debian DEB_PACKAGES=gnuplot-nox
	@$(MAKE) --no-print-directory $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j $(JOBS) --target ringworld
	@bash jobs/demo.sh $(BUILD_DIR)

# The vision demo (jobs/demo_vision.sh, jobs/demo-vision.ini): a visual needle in long videos.
demo-vision: deps-if-debian
	@$(MAKE) --no-print-directory $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j $(JOBS) --target ringworld
	@bash jobs/demo_vision.sh $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR)

# ---- sanitizers and fuzzing (README: Sanitizers and fuzzing); CI runs both after `make test` ----
# One clang build serves both (CI builds it once): every target with AddressSanitizer +
# UndefinedBehaviorSanitizer at -O1, the library also with libFuzzer's coverage, the tests linked
# as usual and the fuzz targets as libFuzzer programs.
#   make test-sanitize  builds it in $(SANITIZE_DIR), then runs the tests labelled `sanitize`
#                       (tests/CMakeLists.txt says which)
#   make fuzz-short     every fuzz target for FUZZ_SHORT_SECONDS on structured HDF5 inputs (CI)
#   make fuzz           every fuzz target for FUZZ_SECONDS, raw HDF5 bytes too (the long run)
SANITIZE_DIR ?= build-sanitize
FUZZ_DIR ?= $(SANITIZE_DIR)
# 2 s a target (9 targets; was 5 s for 6): each start costs about 2 s of CPU besides (MPI_Init and
# ASan's start), so the short run stays under the 6 x (5 + 2) s it took before the import, weight-file
# and image targets; it replays each corpus and mutates briefly, the long run (make fuzz) fuzzes.
FUZZ_SHORT_SECONDS ?= 2
FUZZ_SECONDS ?= 600
FUZZ_PACKAGES := clang-14 libclang-rt-14-dev libomp-14-dev
FUZZ_TARGETS := fuzz_jsonl fuzz_config fuzz_attn_input fuzz_forward_input fuzz_token_dataset fuzz_checkpoint \
                fuzz_import fuzz_weight_files fuzz_image
SANITIZE_TARGETS := ringworld test_unit test_mpi test_attn_tool test_forward_tool sanitizer_selfcheck $(FUZZ_TARGETS)
# configure-sanitizers DIR: the shared sanitizer + fuzz build, configured once.
define configure-sanitizers
@$(MAKE) --no-print-directory deps DEB_PACKAGES="$(FUZZ_PACKAGES)"
@test -f $(1)/CMakeCache.txt || CC=clang-14 CXX=clang++-14 cmake -S . -B $(1) -DCMAKE_BUILD_TYPE=Release \
  -DRINGWORLD_SANITIZE=address,undefined -DRINGWORLD_FUZZ=ON -DRINGWORLD_TESTS=ON -DRINGWORLD_BENCH=OFF \
  -DRINGWORLD_GPU_EMU=OFF $(CMAKE_FLAGS)
endef
.PHONY: test-sanitize fuzz-build fuzz-short fuzz

test-sanitize: deps
	$(call configure-sanitizers,$(SANITIZE_DIR))
	cmake --build $(SANITIZE_DIR) -j $(JOBS) --target $(SANITIZE_TARGETS)
	cd $(SANITIZE_DIR) && ctest -L sanitize -j $(TEST_JOBS) --output-on-failure --timeout 900

fuzz-build: deps
	$(call configure-sanitizers,$(FUZZ_DIR))
	cmake --build $(FUZZ_DIR) -j $(JOBS) --target $(FUZZ_TARGETS)

fuzz-short: fuzz-build
	RW_FUZZ_HDF5=structured bash tests/fuzz/run_fuzz.sh $(FUZZ_DIR) $(FUZZ_SHORT_SECONDS)

fuzz: fuzz-build
	bash tests/fuzz/run_fuzz.sh $(FUZZ_DIR) $(FUZZ_SECONDS)
