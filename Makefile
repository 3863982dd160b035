# Two set-up commands on a fresh machine: `make table-imp-vs-stable` and `make test`.
# Both create .venv and install the project into it when it is missing or older than pyproject.toml.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
PROFILE ?= cpu
EXECUTOR ?= local
RUN_FLAGS ?=
RESULTS ?= results
REPORTS ?= reports
QUICK ?=
BIN := $(VENV)/bin

# Every manifest bench/manifests/<target>.toml is a make target of the same name.
TARGETS := $(basename $(notdir $(wildcard bench/manifests/*.toml)))

.PHONY: test test-slow test-slurm test-perf test-targets test-browser reports site reproduce-all validate bench-perf clean-venv slurm-up slurm-down $(TARGETS)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

$(TARGETS): $(STAMP)
	$(BIN)/prunebench run $@ --profile $(PROFILE) --executor $(EXECUTOR) $(RUN_FLAGS)

# Every target's PROFILE as one grid (a run shared by targets is trained once, and the workers
# stay busy across targets), then every target's report, the claims and the site.
# `RUN_FLAGS=--dry-run` counts it.
reproduce-all: $(STAMP)
	$(BIN)/prunebench run --all --profile $(PROFILE) --executor $(EXECUTOR) $(RUN_FLAGS)
	$(BIN)/prunebench claims --profile $(PROFILE)
	$(BIN)/prunebench site --profile $(PROFILE)

# Regenerate every target's report for PROFILE from the stored runs, training nothing, then
# list every claim with its verdict (reports/claims-PROFILE.csv) and render the site.
reports: $(STAMP)
	$(BIN)/prunebench report --all --profile $(PROFILE)
	$(BIN)/prunebench claims --profile $(PROFILE)
	$(BIN)/prunebench site --profile $(PROFILE)

# The static HTML site of PROFILE's reports, from the stored runs and reports alone:
# reports/site/PROFILE/index.html, which opens from the file system.
site: $(STAMP)
	$(BIN)/prunebench site --profile $(PROFILE)

validate: $(STAMP)
	$(BIN)/prunebench validate --all

# The test suite on every core, its 25 slowest tests listed at the end, but for the end-to-end
# runs through the CLI and the installed wheel (`make test-slow`), the tests against a SLURM
# cluster (`make test-slurm`), the benchmark's own test (`make test-perf`), every paper
# target's smoke profile through `prunebench run` (`make test-targets`) and the site in a
# browser (`make test-browser`); CI runs all six.
test: $(STAMP)
	$(BIN)/python -m pytest -n auto --durations=25 -m "not slow and not perf and not slurm and not targets and not browser"

test-slow: $(STAMP)
	$(BIN)/python -m pytest -n auto --durations=10 -m "slow and not perf and not slurm and not targets and not browser"

test-targets: $(STAMP)
	$(BIN)/python -m pytest -m targets

# The tests against a real SLURM cluster (tests/slurm-local.sh, started here as root when
# nothing answers); skipped with the reason when none can start.
test-slurm: $(STAMP)
	$(BIN)/python -m pytest -m slurm

test-perf: $(STAMP)
	$(BIN)/python -m pytest -m perf

# The site in headless Chromium (Debian package chromium): one rendered from a small grid, then
# PROFILE's (reports/site/PROFILE, if rendered), a screenshot of its index kept as
# reports/site/PROFILE-index.png.
test-browser: $(STAMP)
	PRUNEBENCH_SITE=$(REPORTS)/site/$(PROFILE) $(BIN)/python -m pytest -m browser

# The performance benchmarks: $(RESULTS)/perf/<date>-<host>.parquet and $(REPORTS)/perf/perf.md.
# QUICK=1 is a fast variant that checks every section runs (its figures are not for goals).
bench-perf: $(STAMP)
	$(BIN)/python -m bench.perf $(if $(QUICK),--quick) --results $(RESULTS) --reports $(REPORTS)

# A single-node SLURM cluster on this machine (as root; installs slurm-wlm, slurmdbd, munge and
# mariadb-server when missing). The tests marked `slurm` use it.
slurm-up:
	tests/slurm-local.sh up

slurm-down:
	tests/slurm-local.sh down

clean-venv:
	rm -rf $(VENV)
