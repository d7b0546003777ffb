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
# What the venv installs is what the suite last passed with: every package (the runtime's, the `test`
# extra's, what they pull in, and what builds and installs them) pinned to one version and its files'
# hashes. pyproject.toml keeps the ranges, for installing miro-sync as a library. The image installs the
# runtime lock: the same pins less the test tools. `make lock` moves the pins, then runs the suite on them.
LOCK         = requirements.lock
RUNTIME_LOCK = requirements-runtime.lock
BUILD_LOCK   = requirements-build.lock
UV_VERSION   = 0.13.10
# --upgrade takes the newest release each range admits; `make lock LOCK_ARGS=` keeps the pins that still
# fit (to add a dependency alone), `LOCK_ARGS='--upgrade-package pillow'` moves one.
LOCK_ARGS   ?= --upgrade
# One lock for Python >= 3.11 on every platform (markers where a dependency differs: Debian 12's Python
# 3.11.2 needs async-timeout), from PyPI alone: uv reads no pip configuration, and no uv.toml with --no-config.
UV_COMPILE   = --quiet --universal --generate-hashes --no-config --custom-compile-command 'make lock'
# The build lock, installed first: pip, the project's build backend, and what pyvips builds with (it is
# published as an sdist only; its pyproject.toml's build-system, which a new pyvips may change). Everything
# after it builds without isolation, with these: an isolated build would fetch the newest, unhashed.
SDIST_BUILD_REQUIRES = cffi pkgconfig
BUILD_TOOLS  = $(BIN)/python -c 'import sys, tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], *sys.argv[1:], sep="\n")' \
               pip $(SDIST_BUILD_REQUIRES)

.PHONY: venv deps containers-setup demo lint test test-fast bench clean lock lock-only

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install when a lock or pyproject.toml changes. The build lock first, with the pip the venv came with
# (a few packages, the locked pip among them: pip 23.2 takes 19.5 s to install the lock, 26.3 14 s); then
# the lock; then the project alone, as hashes cannot pin a folder.
$(VENV)/.installed: $(BUILD_LOCK) $(LOCK) pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r $(BUILD_LOCK)
	$(BIN)/python -m pip install --quiet --require-hashes --no-build-isolation -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

venv: $(VENV)/.installed

# The three locks, the runtime and build ones within the full one's pins. uv, not pip-compile: it writes
# one lock for every platform and Python (pip-compile resolves for the machine it runs on only), in a
# second. uv itself is pinned by version only: it writes the locks (reviewed as a diff), it installs nothing.
lock-only: $(BIN)/python
	$(BIN)/python -m pip install --quiet 'uv==$(UV_VERSION)'
	$(BUILD_TOOLS) | $(BIN)/uv pip compile $(UV_COMPILE) pyproject.toml - --extra test $(LOCK_ARGS) -o $(LOCK)
	$(BUILD_TOOLS) | $(BIN)/uv pip compile $(UV_COMPILE) pyproject.toml - --constraints $(LOCK) -o $(RUNTIME_LOCK)
	$(BUILD_TOOLS) | $(BIN)/uv pip compile $(UV_COMPILE) - --constraints $(LOCK) -o $(BUILD_LOCK)

# The new pins, then the suite on them (the venv re-installs, as the locks changed): commit them if it passes.
lock: lock-only
	@$(MAKE) --no-print-directory test

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
