"""Shared fixtures. Each area keeps its fixtures in ``tests/fixtures/<area>.py`` (a pytest plugin)."""

pytest_plugins = [
    "tests.fixtures.secrets_scan",  # first: other fixtures feed it
    "tests.fixtures.procs",
    "tests.fixtures.redis",
    "tests.fixtures.sandbox",
    "tests.fixtures.stack",
]

# Long files first. `make test` hands whole files to four processes (pytest-xdist, `--dist loadfile
# --no-loadscope-reorder`) in collection order, so the run should not end waiting on a long file that
# began last. xdist's own order, most tests first, began the one-test bench run and the container
# harness last; these directories hold the files of a minute or more.
LONG_FIRST = ("tests/containers/", "tests/bench/", "tests/drills/", "tests/e2e/", "tests/url_route/")


def pytest_collection_modifyitems(session, config, items) -> None:
    def rank(item) -> int:
        return next((n for n, prefix in enumerate(LONG_FIRST) if item.nodeid.startswith(prefix)), len(LONG_FIRST))

    items.sort(key=rank)  # stable: within a rank, collection order
