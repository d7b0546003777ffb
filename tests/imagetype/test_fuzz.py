"""Mutated pictures of every kind through inspect + prepare_upload, each in a child process: only an
upload or a BadImage with its reason may come out, never a crash, a hang, a memory blow-up or any
other exception (bench.fuzz; `python -m bench fuzz` is the long run, minutes, with cases up to 32 MB).

Hypothesis draws the cases from a fixed seed (the same cases every run, for one Hypothesis
version), and on a failure shrinks them to the fewest and smallest mutations that still fail; the
failure's message is the finding and its recipe.
"""

from __future__ import annotations

import functools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.fuzz.isolated import Limits, Outcome, run_one
from bench.fuzz.mutate import apply, draw, recipe
from bench.fuzz.seeds import KINDS, Seed, seeds
from shared.image.sniff import CONTENT_TYPES
from shared.image.validate import BadImage
from tests.imagetype import faults

CASES = 100
"""About 4 s on this project's 2-core machine (a fork and a tiny conversion each, ~35 ms)."""
MAX_SIZE = 64 << 10
"""Bombs and repeats stay under this: seconds for the test; the long run goes to 32 MB."""
LIMITS = Limits(seconds=20.0)  # the pictures take milliseconds: only a real hang takes 20 s, even on a loaded machine


@functools.cache
def _seeds() -> dict[str, Seed]:
    return seeds()


def _write(folder, name: str, data: bytes):
    path = folder / name
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@settings(max_examples=CASES, derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(KINDS), rnd=st.randoms(use_true_random=False))
def test_mutated_pictures_give_an_upload_or_a_reason(folder, kind, rnd):
    name = rnd.choice(sorted(name for name, seed in _seeds().items() if seed.kind == kind))
    seed, mutations = _seeds()[name], draw(rnd)
    path = _write(folder, "case." + name.rsplit(".", 1)[1], apply(seed.data, seed.kind, mutations, MAX_SIZE))
    verdict = run_one(path, LIMITS)
    assert not verdict.is_finding, f"{verdict.describe()}\nrecipe: {recipe(name, mutations)}\n{verdict.trace}"


def test_every_seed_is_accepted_unmutated(folder):
    """The mutations start from pictures the stack takes, or they would test only its first refusal."""
    verdicts = {name: run_one(_write(folder, name, seed.data), LIMITS) for name, seed in _seeds().items()}
    assert {seed.kind for seed in _seeds().values()} == set(KINDS) == set(CONTENT_TYPES)
    assert {n: v.describe() for n, v in verdicts.items() if v.outcome is not Outcome.ACCEPTED} == {}


@pytest.mark.parametrize(("stand_in", "limits", "outcome", "detail"), [
    (faults.aborts, LIMITS, Outcome.CRASH, "killed by SIGABRT"),
    (faults.segfaults, LIMITS, Outcome.CRASH, "killed by SIGSEGV"),
    (faults.hangs, Limits(seconds=1.0), Outcome.HANG, "no answer in 1 s"),
    (faults.bloats, Limits(memory_mb=200), Outcome.MEMORY, "over the 200 MB limit"),
    (faults.raises, LIMITS, Outcome.UNEXPECTED, "KeyError: 34853"),
    (faults.refuses_without_a_reason, LIMITS, Outcome.UNEXPECTED, "BadImage without a reason"),
    (faults.sends_too_much, LIMITS, Outcome.UNEXPECTED, "upload breaks the contract"),
    (faults.refuses, LIMITS, Outcome.REFUSED, "corrupt png (no IHDR)"),
], ids=lambda v: getattr(v, "__name__", None))
def test_a_failing_stack_costs_the_child_and_is_reported(tmp_path, stand_in, limits, outcome, detail):
    verdict = run_one(_write(tmp_path, "any.png", b"\x89PNG"), limits, stack=stand_in)
    assert (verdict.outcome, verdict.is_finding) == (outcome, outcome is not Outcome.REFUSED), verdict.describe()
    assert detail in verdict.detail
    if outcome in (Outcome.CRASH, Outcome.HANG):
        assert f"in {stand_in.__name__}" in verdict.trace, verdict.trace  # where it was, for the report


ISOLATED_CASES = 40
"""Through the worker's own converter child, which stays warm across cases: about 2 s."""
CONVERTER_FAILED = ("decoder crashed", "took longer than", "needed more than")
"""The converter child's reasons for a picture it did not survive: each is a finding here."""


@pytest.fixture(scope="module")
def converter():
    from shared.image.isolated import Converter

    child = Converter()
    yield child
    child.stop()


@settings(max_examples=ISOLATED_CASES, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(KINDS), rnd=st.randoms(use_true_random=False))
def test_mutated_pictures_through_the_workers_isolation_give_an_upload_or_a_reason(folder, converter, kind, rnd):
    """What a worker calls (shared.image.isolated): a crash, hang or blow-up in the stack would come
    back as a BadImage naming it (and the converter restarted), never take this process down."""
    name = rnd.choice(sorted(name for name, seed in _seeds().items() if seed.kind == kind))
    seed, mutations = _seeds()[name], draw(rnd)
    path = _write(folder, "iso." + name.rsplit(".", 1)[1], apply(seed.data, seed.kind, mutations, MAX_SIZE))
    try:
        upload = converter.prepare(path, 6 * 1024 * 1024)
    except BadImage as exc:
        assert str(exc) and not any(words in str(exc) for words in CONVERTER_FAILED), f"{exc}\nrecipe: {recipe(name, mutations)}"
    else:
        assert upload.content and len(upload.content) <= 6 * 1024 * 1024
