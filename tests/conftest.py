"""Shared fixtures. Each area keeps its fixtures in ``tests/fixtures/<area>.py`` (a pytest plugin)."""

pytest_plugins = [
    "tests.fixtures.secrets_scan",  # first: other fixtures feed it
    "tests.fixtures.procs",
    "tests.fixtures.redis",
    "tests.fixtures.sandbox",
    "tests.fixtures.stack",
]
