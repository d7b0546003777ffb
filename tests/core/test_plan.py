"""shared.plan: the pure sync decisions (the frame layout: test_layout.py)."""

from shared.ledger import ItemEntry
from shared.plan import Action, DeleteVerdict, compare, decide, judge_deletions


def entry(sha="a", item="1", dup_of=None, size=1, mtime=1):
    return ItemEntry(item, sha, size, mtime, slot=0, route="file", delivery="file", at=0.0, dup_of=dup_of)


def test_decide():
    assert decide(entry("a"), "a", None, False, True) is Action.TOUCH
    assert decide(entry("a"), "b", None, False, True) is Action.UPDATE
    assert decide(None, "b", entry("b"), False, True) is Action.MOVE
    assert decide(None, "b", entry("b"), True, True) is Action.DUPLICATE
    assert decide(None, "b", entry("b"), True, False) is Action.CREATE
    assert decide(None, "b", None, False, True) is Action.CREATE
    assert decide(entry("a", dup_of="x"), "b", None, False, True) is Action.CREATE  # a copy got bytes of its own


def test_the_guard_holds_all_or_nothing():
    assert judge_deletions(0, 50, False) is DeleteVerdict.PROCEED
    assert judge_deletions(50, 50, True) is DeleteVerdict.PROCEED
    assert judge_deletions(51, 50, True) is DeleteVerdict.TOO_MANY
    assert judge_deletions(1, 50, False) is DeleteVerdict.FOLDER_GONE  # an unmounted folder is never "delete everything"


def test_compare():
    ledger = {"same": entry(item="1"), "changed": entry(item="2"), "missing": entry(item="3"), "orphan": entry(item="4"),
              "dangling": entry(item="5"), "copy-gone": entry(item="1", dup_of="same")}
    files = {"same": (1, 1), "changed": (2, 1), "missing": (1, 1), "new": (1, 1)}
    drift = compare(files, ledger, {"1", "2", "4", "99"})
    assert (drift.missing_on_board, drift.changed, drift.orphaned, drift.dangling, drift.unsynced) == (
        ["missing"], ["changed"], ["orphan"], ["copy-gone", "dangling"], ["new"])
    assert not drift.in_sync and compare({"same": (1, 1)}, {"same": entry(item="1")}, {"1"}).in_sync


def test_a_file_deleted_while_its_upload_is_in_flight_is_looked_up_again():
    from services.watcher.deletions import LOOKUPS, UNKNOWN, Deletions

    d = Deletions(settle_seconds=1.0, max_delete=1)
    d.note("a.png", UNKNOWN, now=0.0)
    assert d.due(0.5, lambda: True) == [] and d.due(1.0, lambda: True) == [("a.png", UNKNOWN)]
    for attempt in range(LOOKUPS):
        d.look_again("a.png", now=float(attempt))
        assert "a.png" in d
    d.look_again("a.png", now=99.0)  # never got an entry: given up
    assert "a.png" not in d
    # unknown ones do not count against MAX_DELETE; known ones do
    d.note("b.png", UNKNOWN, 0.0), d.note("c.png", "1", 0.0)
    assert sorted(d.due(1.0, lambda: True)) == [("b.png", UNKNOWN), ("c.png", "1")]
    d.note("x.png", "2", 0.0), d.note("y.png", "3", 0.0)
    assert d.due(1.0, lambda: True) == [] and d.held is not None
