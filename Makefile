# swiftdup: the two commands of README are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: all build test deps demo release clean fmt lint

all: build

build:
	$(CARGO) build --release

## Install the tools the tests compare against (stock duplicity, gpg, rdiff).
deps:
	bash tests/tools/install-deps.sh

## Every test: unit tests, format fixtures, bad input, interop with stock duplicity.
test: deps
	$(CARGO) test --all-targets --no-fail-fast

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
