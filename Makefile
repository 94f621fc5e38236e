# swiftdup: the two commands of README are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: all build musl wasm test test-swift deps demo release clean fmt lint
MUSL_TARGET := x86_64-unknown-linux-musl
MUSL_BIN := target/$(MUSL_TARGET)/release/swiftdup

# Test targets that need a running Swift (built with --features swift-tests): every
# integration test whose name starts with `swift` (cargo expands the glob).
SWIFT_TESTS ?= swift*

all: build

build:
	$(CARGO) build --release

## Static binary for FROM scratch images (ring's C code needs Debian's musl-tools).
musl:
	@command -v musl-gcc >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq musl-tools >/dev/null; }
	@rustup target list --installed | grep -qx $(MUSL_TARGET) || rustup target add $(MUSL_TARGET)
	$(CARGO) build --release --target $(MUSL_TARGET)
	@ls -l $(MUSL_BIN)

## Install the tools the tests compare against (stock duplicity, gpg, rdiff).
deps:
	bash tests/tools/install-deps.sh

## Every test: unit tests, format fixtures, bad input, interop with stock duplicity, and
## swiftkeys:// against a real Swift (test-swift). Both parts run even if the first fails.
test: deps
	@status=0; \
	$(CARGO) test --all-targets --no-fail-fast || status=1; \
	bash tests/tools/validate-k8s.sh || status=1; \
	$(MAKE) --no-print-directory test-swift || status=1; \
	exit $$status

## The Swift tests: install Swift (once), start it on 127.0.0.1 in a scratch directory, run
## $(SWIFT_TESTS) with SWIFTDUP_SWIFT_ENV pointing at it, and stop it whatever happened
## (the EXIT trap also runs on failure and Ctrl-C). Swift's logs are kept when tests fail.
test-swift:
	bash tests/swift/install.sh
	@dir=$$(mktemp -d "$${TMPDIR:-/tmp}/swiftdup-swift.XXXXXX"); \
	trap 'status=$$?; bash tests/swift/stop.sh "$$dir"; \
	      if [ $$status -eq 0 ]; then rm -rf "$$dir"; \
	      else echo "test-swift: failed; Swift logs kept in $$dir/log" >&2; fi' EXIT; \
	trap 'exit 130' INT TERM; \
	bash tests/swift/start.sh "$$dir" && \
	SWIFTDUP_SWIFT_ENV="$$dir/env" $(CARGO) test --features swift-tests --no-fail-fast \
	  $(foreach t,$(SWIFT_TESTS),--test '$(t)') && \
	$(MAKE) --no-print-directory musl && \
	bash tests/tools/chroot-test.sh "$$dir/env" $(MUSL_BIN)

## Back up a sample tree, change it, run an incremental, restore and compare.
demo: build
	bash tests/tools/demo.sh

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

clean:
	$(CARGO) clean
