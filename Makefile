# The two commands a new user needs (see README): `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PYTEST_ARGS ?=
# The suite waits on processes far more than it computes (a warm run keeps two cores 45% busy with
# two pytest processes), so four pytest processes (pytest-xdist) share the two cores: 4 min 40 s
# warm against 7 min 24 s with two. Each takes whole files (module-scoped stacks stay in one
# process). PYTEST_JOBS=0 runs serially.
PYTEST_JOBS ?= 4
XDIST = $(if $(filter 0,$(PYTEST_JOBS)),,-n $(PYTEST_JOBS) --dist loadfile --no-loadscope-reorder)

.PHONY: venv deps containers-setup demo lint test test-fast bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.installed

# System packages the suite runs for real: redis-server (and chromium for the board-page test).
deps:
	@scripts/ensure-system-deps

# The whole stack on this machine with no account: private Redis, sandbox Miro board, folder ./inbox.
demo: venv deps
	$(BIN)/miro-sync up --sandbox --folder ./inbox

# Lint and types (rules and why: pyproject.toml); a few seconds, so they run before the suite.
lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

# The container harness's first run on a machine installs podman and its tools, makes a Debian base
# image and builds the stack's image: minutes, mostly downloads. It starts here, in the background, so
# it overlaps the venv, lint and the rest of the suite; the container test then waits for it (the
# harness's own lock) and finds everything ready. Its log: .state/compose-e2e-setup.log.
containers-setup: deps
	@mkdir -p .state
	@scripts/compose-e2e --prepare >.state/compose-e2e-setup.log 2>&1 </dev/null &

# The one test command (CI runs exactly this): lint and types, then everything, containers included.
# apt-get (deps, then the container set-up in the background) and pip (venv) go at once: ~15 s cold.
test:
	@$(MAKE) --no-print-directory -j3 containers-setup venv
	@$(MAKE) --no-print-directory lint
	$(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS)

# Everything but the container harness, for quick local runs.
test-fast: venv deps
	$(BIN)/python -m pytest $(XDIST) -m "not containers" $(PYTEST_ARGS)

bench: venv deps
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
