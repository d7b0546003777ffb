"""What the compose files promise a first run, read from the files themselves (the container harness runs them).

- No worker waits for a healthy image server: with `.env.example` as it is (no URL_SIGNING_SECRET, the file
  route) the workers must start; the image server is still started first, for the url route.
- The folder the stack mounts by default, ./inbox, is in the checkout (owned by whoever cloned it, not created
  by Docker as root), tracked as an empty folder whose one file the watcher leaves alone.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from services.watcher.filters import ignore_reason

ROOT = Path(__file__).resolve().parents[2]
BASE, SANDBOX = "docker-compose.yml", "compose.sandbox.yml"


def services(name: str) -> dict[str, dict]:
    return yaml.safe_load((ROOT / name).read_text())["services"]


def condition(service: dict, dependency: str) -> str | None:
    """How ``service`` waits for ``dependency`` (the short list form is service_started), or None."""
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        return "service_started" if dependency in depends else None
    if dependency not in depends:
        return None
    return (depends[dependency] or {}).get("condition", "service_started")


@pytest.mark.parametrize("name", [BASE, SANDBOX])
def test_no_worker_or_watcher_waits_for_a_healthy_image_server(name):
    found = services(name)
    for service in ("worker", "watcher"):
        assert condition(found.get(service, {}), "image-server") != "service_healthy", f"{name}: {service}"


def test_the_image_server_is_started_before_the_workers():
    # The url route probes through it at the first big picture; podman-compose honours the order only.
    assert condition(services(BASE)["worker"], "image-server") == "service_started"


def default_host_folders() -> set[str]:
    """The host side of every bind mount onto /data/inbox, as `${WATCH_FOLDER_HOST:-<default>}` defaults it."""
    folders = set()
    for service in services(BASE).values():
        for volume in service.get("volumes", []):
            host, mounted, _ = volume.partition(":/data/inbox")
            if mounted:
                match = re.fullmatch(r"\$\{WATCH_FOLDER_HOST:-(.+)\}", host)
                assert match, f"{volume}: the host folder is not WATCH_FOLDER_HOST with a default"
                folders.add(match.group(1))
    return folders


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)


@pytest.fixture(scope="module")
def checkout():
    if git("rev-parse", "--is-inside-work-tree").stdout.strip() != "true":
        pytest.skip("not a git checkout")


def test_the_default_folder_is_in_the_checkout_as_a_tracked_empty_folder(checkout):
    assert default_host_folders() == {"./inbox"}
    assert git("ls-files", "inbox").stdout.split() == ["inbox/.gitignore"]
    assert (ROOT / "inbox").is_dir()
    # What a user drops in stays out of git, at any depth; the .gitignore itself stays in.
    for dropped in ("inbox/photo.jpg", "inbox/sub/photo.png", "inbox/.DS_Store"):
        assert git("check-ignore", "--no-index", "-q", dropped).returncode == 0, dropped
    assert git("check-ignore", "--no-index", "-q", "inbox/.gitignore").returncode == 1


def test_the_watcher_leaves_every_tracked_file_of_the_folder_alone(checkout):
    tracked = [path.removeprefix("inbox/") for path in git("ls-files", "inbox").stdout.split()]
    assert tracked
    # Else each start would report it (`file.rejected`: not a picture), or upload it.
    assert {path: ignore_reason(path) for path in tracked} == dict.fromkeys(tracked, "hidden file")
