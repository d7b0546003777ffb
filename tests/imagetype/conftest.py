"""The corpus, made once per test session (the 50 MP picture takes seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.imagetype.corpus import Picture, small_corpus, write_big_jpeg


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[Picture, Path]:
    folder = tmp_path_factory.mktemp("corpus")
    files = {}
    for picture, data in small_corpus().items():
        files[picture] = folder / picture.name
        files[picture].write_bytes(data)
    return files


@pytest.fixture(scope="session")
def big_jpeg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_big_jpeg(tmp_path_factory.mktemp("big") / "camera-50mp.jpg")
