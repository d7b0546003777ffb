import json
import threading

from shared import keys
from shared.ledger import SCHEMA, Delivery, ItemEntry, Ledger
from tests.fixtures.ledger_v1 import content_key, write_v1

BIG_MTIME = 1764624000123456789  # 19 digits: Lua's doubles would round it


def entry(item_id="1", sha="a" * 64, size=10, mtime_ns=111, slot=0, **kw):
    return ItemEntry(item_id=item_id, sha256=sha, size=size, mtime_ns=mtime_ns, slot=slot, route="file", delivery="file", at=0.0, **kw)


def test_synced_matches_exact_version_only(redis_client):
    ledger = Ledger(redis_client, "b=")
    ledger.record("a.png", entry())
    assert ledger.synced([("a.png", 10, 111), ("a.png", 11, 111), ("a.png", 10, 112), ("b.png", 10, 111)]) == [True, False, False, False]
    assert ledger.path("a.png").item_id == "1"
    assert ledger.owner_of("a" * 64) == "a.png"


def test_synced_in_chunks(redis_client):
    ledger = Ledger(redis_client, "b=")
    for i in range(0, 2500, 2):
        ledger.record(f"f{i}.png", entry(item_id=str(i), sha=f"{i:064d}", size=i, mtime_ns=i))
    result = ledger.synced([(f"f{i}.png", i, i) for i in range(2500)])
    assert result == [i % 2 == 0 for i in range(2500)]


def test_slots_unique_under_concurrency_and_stable_per_path(redis_client):
    ledger = Ledger(redis_client, "b=")
    got: list[int] = []
    lock = threading.Lock()

    def reserve(i):
        slot = ledger.reserve_slot(f"p{i}.png")
        with lock:
            got.append(slot)

    threads = [threading.Thread(target=reserve, args=(i,)) for i in range(50)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(got) == list(range(50))
    assert ledger.reserve_slot("p7.png") == ledger.reserve_slot("p7.png")


def test_intent_lifecycle_and_legacy_intent(redis_client):
    ledger = Ledger(redis_client, "b=")
    ledger.begin("x.png", 4, "x.png", "url")
    intent = ledger.intent("x.png")
    assert (intent.slot, intent.title, intent.route) == (4, "x.png", "url")
    ledger.record("x.png", entry(slot=4))
    assert ledger.intent("x.png") is None
    # An intent the first layout filed under the content key is still found, and cleared by the record.
    redis_client.set(keys.intent("b=", "c" * 64), json.dumps({"slot": 9, "title": "y.png", "at": 0.0}))
    assert ledger.intent("y.png", "c" * 64).slot == 9
    ledger.record("y.png", entry(item_id="2", sha="c" * 64, slot=9), "c" * 64)
    assert ledger.intent("y.png", "c" * 64) is None


def test_edit_moves_the_content_index_to_the_new_bytes(redis_client):
    ledger = Ledger(redis_client, "b=")
    ledger.record("a.png", entry(sha="a" * 64))
    ledger.record("a.png", entry(sha="b" * 64, size=11))
    assert ledger.owner_of("a" * 64) is None and ledger.owner_of("b" * 64) == "a.png"


def test_move_is_compare_and_set_on_the_item(redis_client):
    ledger = Ledger(redis_client, "b=")
    ledger.record("old.png", entry(item_id="7"))
    ledger.reserve_slot("old.png")
    assert ledger.move("old.png", "new.png", entry(item_id="8")) is False  # old points at another item
    assert ledger.move("old.png", "new.png", entry(item_id="7", size=10)) is True
    assert ledger.path("old.png") is None and ledger.path("new.png").item_id == "7"
    assert ledger.owner_of("a" * 64) == "new.png"
    assert not redis_client.hexists(keys.slots("b="), "old.png")  # a new file at the old path gets a fresh cell
    assert ledger.move("old.png", "new.png", entry(item_id="7")) is False  # done already: not twice


def test_drop_release_and_set_delivery_only_for_the_same_item(redis_client):
    ledger = Ledger(redis_client, "b=")
    ledger.record("a.png", entry(item_id="1", mtime_ns=BIG_MTIME))
    assert ledger.set_delivery("a.png", "2", Delivery.VERIFIED) is False
    assert ledger.set_delivery("a.png", "1", Delivery.VERIFIED) is True
    got = ledger.path("a.png")
    assert got.delivery == "verified" and got.mtime_ns == BIG_MTIME  # no number rounded on the way
    assert ledger.drop("a.png", "2") is False and ledger.path("a.png") is not None
    assert ledger.release("a.png", got, "keep") is True
    assert ledger.path("a.png") is None and ledger.released("a.png")["item_id"] == "1"
    assert ledger.owner_of("a" * 64) is None


def test_forget_makes_the_path_unsynced(redis_client):
    ledger = Ledger(redis_client, "b=")
    ledger.record("a.png", entry())
    ledger.reject("bad.png", 0, 1, "empty")
    assert ledger.forget("a.png") and ledger.forget("bad.png")
    assert ledger.synced([("a.png", 10, 111)]) == [False] and ledger.rejected([("bad.png", 0, 1)]) == [False]
    assert ledger.forget("never.png") is False


def test_reject_reports_each_version_once(redis_client):
    ledger = Ledger(redis_client, "b=")
    assert ledger.reject("bad.png", 0, 1, "empty") is True
    assert ledger.reject("bad.png", 0, 1, "empty") is False
    assert ledger.reject("bad.png", 5, 2, "truncated") is True


def test_a_file_refused_while_it_was_written_and_then_synced_is_no_longer_rejected(redis_client):
    ledger = Ledger(redis_client, "b=")
    ledger.reject("slow.png", 5, 1, "truncated png")  # read half-written
    ledger.record("slow.png", entry(size=10, mtime_ns=2))  # then complete, and uploaded
    assert ledger.rejections() == {}
    assert ledger.rejected([("slow.png", 5, 1)]) == [False]


# --- migration from the first layout ------------------------------------------------------------


def fill_v1(redis_client, board="b=", count=5, duplicates="skip"):
    for i in range(count):
        sha = f"{i:064x}"
        rel = f"d/p{i}.png"
        write_v1(redis_client, board, rel, 100 + i, BIG_MTIME + i, content_key(sha, rel, duplicates),
                 {"item_id": str(3458764600000000001 + i), "slot": i, "route": "url" if i == 1 else "file",
                  "delivery": "verified" if i == 1 else "file"})
    # a copy under another name, with DUPLICATES=skip: the first layout recorded the path, no item
    if duplicates == "skip":
        write_v1(redis_client, board, "copy.png", 100, BIG_MTIME + 50, f"{0:064x}", None)


def test_migration_keeps_every_item_slot_and_version(redis_client):
    fill_v1(redis_client)
    ledger = Ledger(redis_client, "b=")
    assert ledger.migrate() == 6
    items = ledger.all_items()
    assert set(items) == {f"d/p{i}.png" for i in range(5)} | {"copy.png"}
    for i in range(5):
        e = items[f"d/p{i}.png"]
        assert (e.item_id, e.slot, e.sha256, e.size, e.mtime_ns) == (str(3458764600000000001 + i), i, f"{i:064x}", 100 + i, BIG_MTIME + i)
        assert e.owner and ledger.owner_of(f"{i:064x}") == f"d/p{i}.png"
    assert (items["d/p1.png"].route, items["d/p1.png"].delivery) == ("url", "verified")
    copy = items["copy.png"]
    assert copy.dup_of == "d/p0.png" and copy.item_id == items["d/p0.png"].item_id and copy.delivery == "duplicate"
    # every file version synced before is synced after: nothing is uploaded again
    assert ledger.synced([(f"d/p{i}.png", 100 + i, BIG_MTIME + i) for i in range(5)] + [("copy.png", 100, BIG_MTIME + 50)]) == [True] * 6
    assert redis_client.get(keys.ledger_schema("b=")).decode() == SCHEMA
    assert ledger.migrate() is None  # once


def test_migration_with_duplicates_upload_keys(redis_client):
    fill_v1(redis_client, duplicates="upload")
    ledger = Ledger(redis_client, "b=")
    ledger.migrate()
    assert ledger.path("d/p3.png").sha256 == f"{3:064x}"


def test_migration_interrupted_before_the_swap_leaves_the_old_ledger_and_restarts(redis_client, monkeypatch):
    fill_v1(redis_client, count=2500)
    before = {k: redis_client.hgetall(k) for k in (keys.ledger_paths("b="), keys.ledger_content("b="))}
    import shared.migrate as migrate_module

    calls = {"n": 0}
    real = migrate_module._convert

    def dies_on_the_second_chunk(*args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise SystemExit("killed")
        return real(*args)

    monkeypatch.setattr(migrate_module, "_convert", dies_on_the_second_chunk)
    try:
        Ledger(redis_client, "b=").migrate()
    except SystemExit:
        pass
    assert {k: redis_client.hgetall(k) for k in before} == before  # the old ledger untouched
    assert redis_client.get(keys.ledger_schema("b=")) is None
    monkeypatch.setattr(migrate_module, "_convert", real)
    assert Ledger(redis_client, "b=").migrate() == 2501
    assert Ledger(redis_client, "b=").count() == 2501


def test_concurrent_starts_migrate_once(redis_client):
    fill_v1(redis_client, count=3000)
    results = []
    threads = [threading.Thread(target=lambda: results.append(Ledger(redis_client, "b=").migrate())) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(results, key=str) == [3001, None, None, None]
    assert Ledger(redis_client, "b=").count() == 3001


def test_an_empty_redis_is_marked_current(redis_client):
    assert Ledger(redis_client, "b=").migrate() == 0
    assert redis_client.get(keys.ledger_schema("b=")).decode() == SCHEMA


def test_a_slot_given_back_at_the_end_is_taken_again_and_one_in_the_middle_stays_empty(redis_client):
    ledger = Ledger(redis_client, "b=")
    assert [ledger.reserve_slot(f"{n}.png") for n in "abcd"] == [0, 1, 2, 3]
    assert ledger.give_back("d.png", None) == 3 and ledger.reserved(None) == 3  # a rename: its item kept its cell
    assert ledger.give_back("b.png", None) == 1 and ledger.reserved(None) == 3  # a hole: c stays where it is
    assert ledger.give_back("c.png", None) == 2 and ledger.reserved(None) == 1  # the end steps back over both
    assert ledger.reserve_slot("e.png") == 1
    assert ledger.give_back("nothing.png", None) is None
    ledger.begin("e.png", 1, "e.png", "file")  # an attempt may have made an item there: not free
    assert ledger.give_back("e.png", None) is None and ledger.reserve_slot("e.png") == 1
    # A folder's frame has its own counter.
    assert ledger.reserve_slot("sub/x.png", "sub") == 0 and ledger.give_back("sub/x.png", "sub") == 0
    assert ledger.reserved("sub") == 0 and ledger.reserved(None) == 2


def test_a_folder_gets_its_column_with_its_first_slot_and_old_frames_keep_column_0(redis_client):
    ledger = Ledger(redis_client, "new=")
    for path in ("b/1.png", "a/1.png", "b/2.png"):
        ledger.reserve_slot(path, path.split("/")[0])
    assert (ledger.frame_column("b"), ledger.frame_column("a"), ledger.frame_column("c")) == (0, 1, 2)
    # A board laid out by the earlier version: fixed-size frames stacked in column 0.
    old = Ledger(redis_client, "old=")
    redis_client.hset(keys.frame_index("old="), mapping={"folder:batch#0": 0, "folder:batch#1": 1})
    redis_client.set(keys.next_frame_index("old="), 2)
    assert old.frame_column("batch") is None  # keeps its frames and their continuations
    assert old.frame_column("new") == 1 and old.frame_column("newer") == 2
