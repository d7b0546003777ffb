import threading

from shared.ledger import ContentEntry, Ledger


def entry(item_id="1", slot=0, path="a.png"):
    return ContentEntry(item_id=item_id, route="file", delivery="file", slot=slot, path=path, at=0.0)


def test_synced_matches_exact_version_only(redis_client):
    ledger = Ledger(redis_client, "b=")
    ledger.record("a.png", 10, 111, "sha-a", entry())
    assert ledger.synced([("a.png", 10, 111), ("a.png", 11, 111), ("a.png", 10, 112), ("b.png", 10, 111)]) == [True, False, False, False]
    assert ledger.content("sha-a").item_id == "1"
    assert ledger.path("a.png").sha256 == "sha-a"


def test_synced_handles_many_paths_in_chunks(redis_client):
    ledger = Ledger(redis_client, "b=")
    for i in range(3):
        ledger.record(f"f{i}.png", i, i, f"s{i}", None)
    result = ledger.synced([(f"f{i}.png", i, i) for i in range(2500)])
    assert result[:3] == [True, True, True] and not any(result[3:]) and len(result) == 2500


def test_slots_unique_under_concurrency_and_stable_per_content(redis_client):
    ledger = Ledger(redis_client, "b=")
    got: list[int] = []
    lock = threading.Lock()

    def reserve(i):
        slot = ledger.reserve_slot(f"sha{i}")
        with lock:
            got.append(slot)

    threads = [threading.Thread(target=reserve, args=(i,)) for i in range(50)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(got) == list(range(50))
    assert ledger.reserve_slot("sha7") == ledger.reserve_slot("sha7")


def test_intent_lifecycle(redis_client):
    ledger = Ledger(redis_client, "b=")
    ledger.begin("sha", 4, "x.png", "url")
    intent = ledger.intent("sha")
    assert (intent.slot, intent.title, intent.route) == (4, "x.png", "url")
    ledger.record("x.png", 1, 1, "sha", entry(slot=4))
    assert ledger.intent("sha") is None


def test_reject_reports_each_version_once(redis_client):
    ledger = Ledger(redis_client, "b=")
    assert ledger.reject("bad.png", 0, 1, "empty") is True
    assert ledger.reject("bad.png", 0, 1, "empty") is False
    assert ledger.reject("bad.png", 5, 2, "truncated") is True
