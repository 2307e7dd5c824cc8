# rudder: the two set-up commands are `make demo` and `make test`; both fetch the models if missing.
SHELL := bash
CARGO ?= cargo
export RUDDER_MODELS_DIR ?= $(HOME)/.cache/rudder/models

.PHONY: demo test models build lint fmt clean-models artifacts fuzz

## demo: fetch models, build, start the all-in-one server on the embedded store and run the main job
demo: models build
	bash deploy/demo.sh

## test: fetch models, build, check the server with a stock Python gRPC client, run every Rust test
test: models build
	bash deploy/clients/python/smoke.sh
	$(CARGO) test --locked --workspace

## fuzz: mutate the sample corpus into every document parser for RUDDER_FUZZ_SECONDS (default 600),
## and 100,000 bundle artifact files into the artifact reader; findings go to target/fuzz-findings/
## (make test runs a short bounded pass of both)
fuzz: models
	$(CARGO) test --locked -p rudder-ingest --test integration fuzz_for_a_while -- --ignored --nocapture
	RUDDER_FUZZ_ROUNDS=5000 $(CARGO) test --locked -p rudder-generation --lib mutated_artifact_files -- --nocapture

## models: fetch and verify the model files of shared/MODELS.md (does nothing when they are in place)
models:
	bash deploy/models.sh

build:
	$(CARGO) build --locked -p rudder-server

## artifacts: train and evaluate one region's steering for a new bundle version into
## prompts/artifacts/$(REGION)/v$(VERSION) (make artifacts REGION=uk VERSION=4; ~30 min)
artifacts: models build
	RUDDER_BIN=target/debug/rudder bash prompts/train-region.sh $(REGION) $(VERSION)

## lint: formatting and clippy, as reviewers expect them
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all
