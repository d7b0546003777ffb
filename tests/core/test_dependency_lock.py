"""The locks `make venv` and the image install from still hold what pyproject.toml declares.

`make lock` writes them (uv, from pyproject.toml); a range edited without it, or a lock edited by hand,
would otherwise go unnoticed until an install took something else than what the suite passed with.
"""

import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK, RUNTIME_LOCK, BUILD_LOCK = "requirements.lock", "requirements-runtime.lock", "requirements-build.lock"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
RUNTIME = [Requirement(r) for r in PROJECT["project"]["dependencies"]]
TEST = [Requirement(r) for r in PROJECT["project"]["optional-dependencies"]["test"]]
BUILD = [Requirement(r) for r in PROJECT["build-system"]["requires"]] + [Requirement("pip")]
DECLARED = {LOCK: RUNTIME + TEST + BUILD, RUNTIME_LOCK: RUNTIME + BUILD, BUILD_LOCK: BUILD}


@dataclass(frozen=True)
class Pin:
    requirement: Requirement
    hashes: frozenset[str]

    @property
    def version(self) -> str | None:
        """The pinned version, or None when the line is not one exact `==` pin."""
        specs = list(self.requirement.specifier)
        return specs[0].version if len(specs) == 1 and specs[0].operator == "==" else None


def read_lock(text: str) -> dict[str, list[Pin]]:
    """Each package's pins (a universal lock may pin one package twice, under different markers)."""
    pins: dict[str, list[Pin]] = {}
    logical = text.replace("\\\n", " ").splitlines()
    for line in (raw.strip() for raw in logical):
        if not line or line.startswith("#"):
            continue
        requirement, *hashes = line.split(" --hash=")
        pin = Pin(Requirement(requirement), frozenset(h.strip() for h in hashes))
        pins.setdefault(canonicalize_name(pin.requirement.name), []).append(pin)
    return pins


def lock(name: str) -> dict[str, list[Pin]]:
    return read_lock((ROOT / name).read_text())


PROJECT_ITSELF = {"miro-sync (pyproject.toml)", f"-c {LOCK}"}
"""What uv's ``# via`` names when a package is there because pyproject.toml (or the full lock) asks for it."""


def required_by(text: str) -> dict[str, set[str]]:
    """Each package's ``# via`` entries (uv writes them under the pin: ``# via x``, or ``# via`` then ``#   x`` lines)."""
    found: dict[str, set[str]] = {}
    current = None
    for line in (raw.strip() for raw in text.replace("\\\n", " ").splitlines()):
        if line and not line.startswith("#"):
            current = canonicalize_name(Requirement(line.split(" --hash=")[0]).name)
        elif current and line.startswith("# via "):
            found.setdefault(current, set()).add(line.removeprefix("# via ").strip())
        elif current and line.startswith("#   "):
            found.setdefault(current, set()).add(line.removeprefix("#").strip())
    return found


def unpinned(declared: list[Requirement], pins: dict[str, list[Pin]]) -> list[str]:
    """Each declared requirement the lock lacks, pins outside its range, or pins for some platforms only."""
    problems = []
    for req in declared:
        found = pins.get(canonicalize_name(req.name), [])
        if not found:
            problems.append(f"{req}: not in the lock")
        for pin in found:
            if pin.version is None or not req.specifier.contains(pin.version, prereleases=True):
                problems.append(f"{req}: the lock has {pin.requirement}")
            elif pin.requirement.marker is not None and req.marker is None:
                problems.append(f"{req}: the lock installs it only where {pin.requirement.marker}")
    return problems


@pytest.mark.parametrize("name", DECLARED)
def test_every_declared_dependency_is_pinned_within_its_range(name):
    problems = unpinned(DECLARED[name], lock(name))
    assert not problems, f"{name} does not hold what pyproject.toml declares (run `make lock`): {problems}"


@pytest.mark.parametrize("name", DECLARED)
def test_every_pin_is_one_version_with_its_hashes(name):
    pins = [pin for found in lock(name).values() for pin in found]
    assert len(pins) >= len(DECLARED[name])
    loose = [str(p.requirement) for p in pins if p.version is None or not p.hashes or not all(h.startswith("sha256:") for h in p.hashes)]
    assert not loose, f"{name}: pins without one exact version and sha256 hashes (run `make lock`): {loose}"


@pytest.mark.parametrize("name", [RUNTIME_LOCK, BUILD_LOCK])
def test_the_runtime_and_build_locks_pin_what_the_full_lock_pins(name):
    def described(pins: list[Pin]) -> list[str]:
        return [f"{p.requirement} ({len(p.hashes)} hashes)" for p in pins]

    full = lock(LOCK)
    differ = [f"{package}: {described(pins)} against {described(full.get(package, []))}"
              for package, pins in lock(name).items() if pins != full.get(package)]
    assert not differ, f"{name} and {LOCK} disagree (run `make lock`): {differ}"


def test_the_runtime_lock_leaves_the_test_tools_out():
    runtime = {canonicalize_name(r.name) for r in RUNTIME}
    text = (ROOT / RUNTIME_LOCK).read_text()
    pinned, parents = read_lock(text), required_by(text)
    # A test tool a runtime package requires anyway (pyyaml, through pyngrok) is no extra install.
    test_only = [r.name for r in TEST if canonicalize_name(r.name) not in runtime and canonicalize_name(r.name) in pinned
                 and not parents.get(canonicalize_name(r.name), set()) - PROJECT_ITSELF]
    assert not test_only, f"the image would install test tools: {test_only}"


def test_via_lines_tell_a_runtime_need_from_the_project_asking():
    text = ("pyyaml==6.0.4 \\\n    --hash=sha256:ab\n    # via\n    #   -c requirements.lock\n    #   pyngrok\n"
            "pytest==9.0.0 \\\n    --hash=sha256:cd\n    # via miro-sync (pyproject.toml)\n")
    parents = required_by(text)
    assert parents == {"pyyaml": {"-c requirements.lock", "pyngrok"}, "pytest": {"miro-sync (pyproject.toml)"}}
    assert parents["pyyaml"] - PROJECT_ITSELF == {"pyngrok"} and not parents["pytest"] - PROJECT_ITSELF


def test_a_pin_outside_its_range_or_missing_or_for_some_platforms_only_is_caught():
    pins = read_lock("rq==3.0.0 \\\n    --hash=sha256:ab\n"
                     "redis==8.2.0 ; python_full_version < '3.12' \\\n    --hash=sha256:cd\n    # via rq\n")
    assert unpinned([Requirement("rq>=2.8,<3"), Requirement("redis>=5,<9"), Requirement("flask>=3.1,<4")], pins) == [
        "rq<3,>=2.8: the lock has rq==3.0.0",
        "redis<9,>=5: the lock installs it only where python_full_version < \"3.12\"",
        "flask<4,>=3.1: not in the lock",
    ]
