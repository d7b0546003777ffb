"""`.env.example` and the loader both come from the one declaration of each setting in shared/settings.py."""

import dataclasses
import subprocess
import sys
from enum import Enum
from pathlib import Path

import pytest

from shared.settings import Grid, Settings, SettingsError, declared, load_settings

ROOT = Path(__file__).resolve().parents[2]
EMPTY = {"MIRO_SYNC_ENV_FILE": "/nonexistent"}
SETTINGS = list(declared(Settings))
GRID = list(declared(Grid))


def test_env_example_is_what_the_declarations_write():
    written = subprocess.run([sys.executable, "-m", "shared.settings"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert (ROOT / ".env.example").read_text() == written, "`.env.example` drifted: run `python -m shared.settings > .env.example`"


def test_every_settings_field_is_declared():
    undeclared = [f.name for f in dataclasses.fields(Settings) if "var" not in f.metadata and f.name not in ("grid", "other_secrets")]
    undeclared += [f.name for f in dataclasses.fields(Grid) if "var" not in f.metadata]
    assert not undeclared, f"declare these with setting(...): {undeclared}"


def test_an_empty_environment_gets_the_declared_defaults():
    s = load_settings(needs=(), environ=EMPTY)
    for f, var, _ in SETTINGS:
        assert getattr(s, f.name) == var.default, var.env
    for f, var, _ in GRID:
        assert getattr(s.grid, f.name) == var.default, var.env


BOUNDS = [(var.env, kind, bound, side) for _, var, kind in SETTINGS + GRID for side, bound in (("min", var.minimum), ("max", var.maximum)) if bound is not None]


@pytest.mark.parametrize("name,kind,bound,side", BOUNDS, ids=[f"{b[0]}-{b[3]}" for b in BOUNDS])
def test_each_declared_bound_is_enforced(name, kind, bound, side):
    step = 1 if kind is int else 0.01
    base = dict(EMPTY, GRID_PADDING="0")  # the smallest cell leaves room for no more
    load_settings(needs=(), environ=dict(base, **{name: str(kind(bound))}))
    outside = bound - step if side == "min" else bound + step
    with pytest.raises(SettingsError) as err:
        load_settings(needs=(), environ=dict(base, **{name: str(kind(outside))}))
    assert err.value.variable == name and str(err.value).startswith(name)


ENUMS = [(var.env, kind) for _, var, kind in SETTINGS if isinstance(kind, type) and issubclass(kind, Enum)]


@pytest.mark.parametrize("name,kind", ENUMS, ids=[e[0] for e in ENUMS])
def test_each_enum_setting_takes_its_values_in_any_case_and_names_them_when_wrong(name, kind):
    field_name = next(f.name for f, var, _ in SETTINGS if var.env == name)
    for member in kind:
        assert getattr(load_settings(needs=(), environ=dict(EMPTY, **{name: str(member.value).swapcase()})), field_name) is member
    with pytest.raises(SettingsError) as err:
        load_settings(needs=(), environ=dict(EMPTY, **{name: "nonsense"}))
    assert str(err.value) == f"{name} is 'nonsense'; expected one of " + "|".join(str(m.value) for m in kind)
