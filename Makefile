# The two README commands: `make report` (main job) and `make test` (whole suite).
PY ?= python3
OUT ?= report

.PHONY: setup setup-test lint report test bench
setup:
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[all]"

# The suite also tests the distributed (Ray) backend of the sweeps: ray is ~260 MB, installed for
# the tests only (the report does not need it).
setup-test: setup
	$(PY) -m pip install --quiet -e ".[all,ray]"

report: setup
	$(PY) -m rugtheory report --out $(OUT)

lint: setup-test
	$(PY) -m ruff check .

test: setup-test lint
	RUGTHEORY_REQUIRE_TRAIN=1 RUGTHEORY_REQUIRE_RAY=1 $(PY) -m pytest

bench: setup
	$(PY) -m benchmarks
