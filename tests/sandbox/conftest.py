"""Fixtures of the sandbox tests: the spec and a session that checks every exchange against it."""

from __future__ import annotations

import pytest

from .openapi import CheckedSession, Spec


@pytest.fixture(scope="session")
def spec() -> Spec:
    return Spec()


@pytest.fixture
def miro(sandbox, spec):
    """A spec-checked session to the ``sandbox`` fixture's API with its full token."""
    session = CheckedSession(spec, sandbox.url, sandbox.token)
    yield session
    session.close()


@pytest.fixture
def miro_for(spec):
    """``miro_for(handle, token)``: a spec-checked session to any sandbox, any token (None: no header)."""
    sessions = []

    def _open(handle, token):
        session = CheckedSession(spec, handle.url, token)
        sessions.append(session)
        return session

    yield _open
    for session in sessions:
        session.close()
