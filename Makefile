# The two commands a newcomer needs: `make demo` (the main job) and `make test`.
# Both create .venv and install everything they need (pip; Debian packages when root).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEBIAN_PACKAGES := prometheus prometheus-alertmanager chromium chromium-driver

.PHONY: demo test test-fast bench lint debian clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: 2.13.0 is the CPU build; anything else pulls multi-GB CUDA wheels.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

debian:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi; \
	else echo "not root: install $(DEBIAN_PACKAGES) yourself for the Alertmanager/promtool/browser tests"; fi

demo: $(STAMP)
	$(BIN)/vitmon demo

# Two workers (pytest-xdist; a test module stays on one worker, so its module fixtures are made
# once): the suite mostly waits on brokers, PostgreSQL and subprocesses, and on its own used ~65 %
# of one core. Tests marked `serial` assert wall-clock behaviour and run afterwards, alone.
test: $(STAMP) debian
	@status=0; \
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --durations=25 -m "not serial" || status=1; \
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=5 -m serial || status=1; \
	exit $$status

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not integration"

bench: $(STAMP)
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python bench/ingest.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .vitmon
