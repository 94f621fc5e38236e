# swiftdup: the two commands of README are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: all build musl image wasm wasmtime test test-swift test-wasm-unit deps demo bench bench-instr \
	clean fmt lint fuzz fuzz-smoke
MUSL_TARGET := x86_64-unknown-linux-musl
MUSL_BIN := target/$(MUSL_TARGET)/release/swiftdup
WASM_TARGET := wasm32-wasip2
WASM_BIN := target/$(WASM_TARGET)/release/swiftdup.wasm

# The test modules (of the one integration binary, tests/it) that need a running Swift
# (built with --features swift-tests); the wasm ones (wasm, swift_wasm) run after them,
# once wasmtime is there.
SWIFT_TESTS ?= swift swift_interop

all: build

build:
	$(CARGO) build --release

## Static binary for FROM scratch images (ring's C code needs Debian's musl-tools).
musl:
	@command -v musl-gcc >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq musl-tools >/dev/null; }
	@rustup target list --installed | grep -qx $(MUSL_TARGET) || rustup target add $(MUSL_TARGET)
	$(CARGO) build --release --target $(MUSL_TARGET)
	@ls -l $(MUSL_BIN)

## The container image: FROM scratch, the musl binary alone, built offline with podman (or
## docker where an engine runs) as $(IMAGE); the Dockerfile's runtime stage, tested by
## tests/image/run.sh in `make test`.
IMAGE ?= localhost/swiftdup:dev
image: musl
	bash tests/image/build.sh $(MUSL_BIN) $(IMAGE)

## The WebAssembly component (WASI 0.2) that wasmtime runs: docs/wasi.md.
wasm:
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)
	$(CARGO) build --release --target $(WASM_TARGET)
	@ls -l $(WASM_BIN)

## wasmtime 48.0.8 for the wasm tests (a cargo install: 12 minutes on an idle 2-core machine,
## 45 on a busy one; skipped when the right version is there).
wasmtime:
	bash tests/tools/install-wasmtime.sh

## Coverage-guided fuzzing of every parser of untrusted input (fuzz/README.md): cargo fuzz
## on the stable toolchain (installed by tests/tools/install-cargo-fuzz.sh), each target
## for FUZZ_SECONDS, one after another (FUZZ_TARGETS="tar_reader pgp" for some only). A
## crash or hang is copied to fuzz/regressions/<target>/, which `cargo test` replays
## (tests/it/fuzz_regressions.rs), and fails the run. fuzz-smoke is the short run `test` does.
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 4
FUZZ_TARGETS ?=
fuzz:
	bash fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-smoke:
	bash fuzz/run.sh $(FUZZ_SMOKE_SECONDS)

## Install the tools the tests compare against (stock duplicity, gpg, rdiff).
deps:
	bash tests/tools/install-deps.sh

## Every test: unit tests, format fixtures, bad input, interop with stock duplicity, the
## Kubernetes manifests, a few seconds of each fuzz target (fuzz-smoke), swiftkeys:// against
## a real Swift, the static musl binary in an empty chroot, and the wasm build under
## wasmtime (test-swift). wasmtime is built in the
## background (niced) while the native tests run, when it is not installed yet; test-swift
## waits for it. Every part runs even if an earlier one fails.
test: deps
	@mkdir -p target; \
	nice -n 10 bash tests/tools/install-wasmtime.sh > target/wasmtime-install.log 2>&1 & \
	status=0; \
	$(CARGO) test --all-targets --no-fail-fast || status=1; \
	bash tests/tools/validate-k8s.sh || status=1; \
	$(MAKE) --no-print-directory fuzz-smoke || status=1; \
	$(MAKE) --no-print-directory test-swift || status=1; \
	wait; exit $$status

## The Swift tests: install Swift (once), start it on 127.0.0.1 in a scratch directory, run
## $(SWIFT_TESTS) with SWIFTDUP_SWIFT_ENV pointing at it, the musl binary from an empty
## chroot and in the image under podman, then the wasm tests (tests/it/wasm.rs on file://, tests/it/swift_wasm.rs over
## wasi:http), and stop Swift whatever happened (the EXIT trap also runs on failure and
## Ctrl-C). Swift's logs are kept when tests fail.
test-swift:
	bash tests/swift/install.sh
	@dir=$$(mktemp -d "$${TMPDIR:-/tmp}/swiftdup-swift.XXXXXX"); \
	trap 'status=$$?; bash tests/swift/stop.sh "$$dir"; \
	      if [ $$status -eq 0 ]; then rm -rf "$$dir"; \
	      else echo "test-swift: failed; Swift logs kept in $$dir/log" >&2; fi' EXIT; \
	trap 'exit 130' INT TERM; \
	bash tests/swift/start.sh "$$dir" || exit 1; \
	export SWIFTDUP_SWIFT_ENV="$$dir/env"; status=0; \
	$(CARGO) test --features swift-tests --no-fail-fast \
	  --test it -- $(foreach t,$(SWIFT_TESTS),'$(t)::') || status=1; \
	{ $(MAKE) --no-print-directory musl && \
	  bash tests/tools/chroot-test.sh "$$dir/env" $(MUSL_BIN); } || status=1; \
	{ $(MAKE) --no-print-directory image && \
	  bash tests/image/run.sh "$$dir/env" $(IMAGE); } || status=1; \
	{ bash tests/tools/install-wasmtime.sh && \
	  $(CARGO) test --features swift-tests,wasm-tests --no-fail-fast \
	    --test it -- wasm::; } || status=1; \
	$(MAKE) --no-print-directory test-wasm-unit || status=1; \
	exit $$status

## Unit tests that must hold on the wasm build itself, run under wasmtime: the AES that
## only the wasm build uses (vpaes, on its SIMD code), against FIPS-197 and rPGP's CFB, and
## the four-lane MD4 of the signatures on its simd128 lanes, against the md4 crate.
test-wasm-unit:
	bash tests/tools/install-wasmtime.sh
	CARGO_TARGET_WASM32_WASIP2_RUNNER="$$(command -v wasmtime || echo $${CARGO_HOME:-$$HOME/.cargo}/bin/wasmtime) run -S http" \
	  $(CARGO) test --target $(WASM_TARGET) --lib -- seal::vpaes rsync::md4x4

## Back up a sample tree, change it, run an incremental, restore and compare.
demo: build
	bash tests/tools/demo.sh

## Time swiftdup, stock duplicity 0.8.22, restic and rustic on the same data sets, to file:// and a
## local Swift; writes target/bench/results.md. Knobs: BENCH_SCALE (e.g. 0.05 for
## a quick run), BENCH_SETS=a,b,c, BENCH_TARGETS=file,swift, BENCH_TOOLS, BENCH_WASI=0,
## BENCH_DIR, BENCH_KEEP=1 (docs/benchmark.md).
bench: build
	bash tests/tools/bench.sh

## Instructions per MiB (valgrind's callgrind) of a backup, an incremental and a restore on
## small fixed data sets: repeatable where wall time on a shared machine is not; writes
## target/bench/instr.md (docs/benchmark.md).
bench-instr: build
	bash tests/tools/bench-instr.sh

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

clean:
	$(CARGO) clean
