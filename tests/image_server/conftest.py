from __future__ import annotations

import logging

import pytest

from services.image_server.app import create_app

from .support import make_settings


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "watch"
    path.mkdir()
    return path


@pytest.fixture
def settings(folder, redis_url):
    return make_settings(folder, redis_url)


@pytest.fixture
def client(settings):
    return create_app(settings).test_client()


@pytest.fixture
def events(caplog):
    """The image server's log events as (event, fields) pairs."""
    caplog.set_level(logging.INFO, logger="miro_sync")

    def _events(name: str | None = None) -> list[tuple[str, dict]]:
        found = [(r.getMessage(), getattr(r, "fields", {})) for r in caplog.records if r.name == "miro_sync.image_server"]
        return [e for e in found if name is None or e[0] == name]

    return _events
