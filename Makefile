# The two README commands: `make report` (main job) and `make test` (whole suite).
PY ?= python3
OUT ?= report

.PHONY: setup report test bench
setup:
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[all]"

report: setup
	$(PY) -m rugtheory report --out $(OUT)

test: setup
	RUGTHEORY_REQUIRE_TRAIN=1 $(PY) -m pytest

bench: setup
	$(PY) -m benchmarks
