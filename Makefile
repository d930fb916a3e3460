# hostkit: every entry point an operator or CI uses. Each target bootstraps first
# (idempotent, a few seconds when everything is in place).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
ROLES ?=

.PHONY: help bootstrap images up down lint unit roles platform test bench

help:
	@echo "make up        build the role images, then bring up the sandbox (the main job)"
	@echo "make down      remove the sandbox (containers, network, state); images stay"
	@echo "make test      every test tier: lint, unit, roles, platform"
	@echo "make lint | unit | roles | platform   one tier"
	@echo "make images    (re)build only the role images that changed"
	@echo "make bench     benchmarks (print figures, assert nothing about time)"

bootstrap:
	@scripts/bootstrap.sh

images: bootstrap
	$(PY) -m image_builders build $(ROLES)

# The sandbox site: infrastructure, fleet and configuration (run again: changes nothing).
# The stamp records what converged, so that the platform tests do not converge it again.
up: images
	$(BIN)/ansible-playbook playbooks/sandbox_up.yml
	$(PY) scripts/sandbox.py stamp

# Remove the sandbox (containers, network, generated state); images stay.
down: bootstrap
	$(PY) scripts/sandbox.py down

lint: bootstrap
	scripts/lint.sh

unit: bootstrap
	$(PY) -m pytest -q -n auto tests/unit

roles: bootstrap
	scripts/molecule-roles.sh $(ROLES)

platform: bootstrap
	scripts/platform-tests.sh

# lint and unit at once (scripts/parallel.sh says why), then roles, then platform.
test: bootstrap
	scripts/parallel.sh lint scripts/lint.sh unit "$(PY) -m pytest -q -n auto tests/unit"
	scripts/molecule-roles.sh
	scripts/platform-tests.sh
	@echo "make test: every tier passed"

bench: bootstrap
	$(PY) tests/bench/bench_images.py
	$(PY) tests/bench/bench_web_stack.py
	$(PY) tests/bench/bench_config_propagation.py
	$(PY) tests/bench/bench_db_cluster.py
	$(PY) tests/bench/bench_backup.py
	$(MAKE) up
	$(PY) tests/bench/bench_launch.py
	$(PY) tests/bench/bench_failover.py
	$(PY) tests/bench/bench_day_two.py
