"""Fixtures for the reliability drills (see docs/reliability.md)."""

from __future__ import annotations

import pytest

from .harness import Rig


@pytest.fixture
def rig_factory(tmp_path, spawn, redis_url, sandbox_factory):
    """``rig_factory(**SandboxConfig fields)``: processes started by the test, a flushed Redis, a fresh sandbox."""
    made: list[Rig] = []

    def make(**sandbox_fields) -> Rig:
        rig = Rig(root=tmp_path, spawn=spawn, sandbox=sandbox_factory(**sandbox_fields), redis_url=redis_url)
        made.append(rig)
        return rig

    yield make
    for rig in made:
        rig.redis.close()


@pytest.fixture
def rig(rig_factory) -> Rig:
    return rig_factory()
