"""`miro-sync check [--fix] [--json]`, `miro-sync forget`, `miro-sync sync --dry-run` as real processes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time

import requests

from shared.ledger import ItemEntry, Ledger
from tests.fixtures.procs import MIRO_SYNC, free_port, wait_for
from tests.fixtures.stack import BOARD, TOKEN, make_image


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(MIRO_SYNC + list(args), env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True, timeout=120)


def check(stack, *args: str, **env: str) -> tuple[int, dict]:
    proc = cli(stack.service_env(**env), "check", "--json", *args)
    assert proc.returncode in (0, 1), proc.stderr + proc.stdout
    return proc.returncode, json.loads(proc.stdout)


def api(stack, method: str, path: str, **kw) -> requests.Response:
    r = requests.request(method, f"{stack.api}/v2/boards/{BOARD}{path}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10, **kw)
    r.raise_for_status()
    return r


def test_check_finds_drift_and_fix_repairs_it(local_stack):
    # MAX_DELETE=0: the watcher holds every deletion, so the orphan waits for check.
    local_stack.env.update({"RESCAN_INTERVAL": "1", "MAX_DELETE": "0", "DELETE_SETTLE_SECONDS": "0.5", "FOLDERS": "flat"})
    local_stack.start()
    for i in range(3):
        make_image(local_stack.folder / f"p{i}.png", seed=i)
    items = {i["data"]["title"]: i for i in local_stack.wait_items(3)}
    # A picture someone else put on the board: never listed, never touched.
    api(local_stack, "POST", "/images", json={"data": {"url": "data:image/png;base64,iVBORw0KGgo=", "title": "theirs.png"},
                                              "position": {"x": -5000, "y": 0}})
    code, found = check(local_stack)
    assert code == 0 and found["in_sync"] and found["not_ours"] == 1, found

    # A person deletes p0's item on the board: rescans respect it.
    api(local_stack, "DELETE", f"/items/{items['p0.png']['id']}")
    time.sleep(2.5)
    assert "p0.png" not in {i["data"]["title"] for i in local_stack.items()}
    # p1's file goes (the watcher holds the deletion: MAX_DELETE=0); p2 is edited behind the stack's back.
    (local_stack.folder / "p1.png").unlink()
    wait_for(lambda: "delete.held" in local_stack.log(), 30, what=lambda: local_stack.log()[-2000:])
    code, found = check(local_stack)
    assert code == 1
    assert (found["missing_on_board"], found["orphaned"], found["dangling"]) == (["p0.png"], ["p1.png"], [])

    # --fix: p0 comes back in its cell; the orphan is held by MAX_DELETE=0 until a higher limit is given.
    code, found = check(local_stack, "--fix")
    assert code == 1 and any("MAX_DELETE=0" in line for line in found["left"]), found
    p0 = next(i for i in local_stack.items() if i["data"]["title"] == "p0.png")
    assert p0["id"] != items["p0.png"]["id"] and p0["position"] == items["p0.png"]["position"]
    code, found = check(local_stack, "--fix", "--max-delete", "1", ON_DELETE="remove")
    assert code == 0 and found["fixed"], found
    titles = {i["data"]["title"] for i in local_stack.items()}
    assert titles == {"p0.png", "p2.png", "theirs.png"}
    code, found = check(local_stack)
    assert code == 0 and found["in_sync"], found


def test_check_exit_2_when_it_cannot_check(local_stack):
    local_stack.start()
    make_image(local_stack.folder / "a.png")
    local_stack.wait_items(1)
    proc = cli(local_stack.service_env(MIRO_API_URL=f"http://127.0.0.1:{free_port()}"), "check")
    assert proc.returncode == 2 and "could not" in proc.stderr, proc.stderr
    os.unlink(local_stack.folder / "a.png")  # the folder now looks unmounted: nothing is compared
    proc = cli(local_stack.service_env(MAX_DELETE="0"), "check", "--fix")
    assert proc.returncode == 2 and "is it mounted" in proc.stderr, proc.stderr + proc.stdout


def _entry(item_id: str, path, sha: str | None = None) -> ItemEntry:
    st = os.stat(path)
    sha = sha or hashlib.sha256(path.read_bytes()).hexdigest()
    return ItemEntry(item_id, sha, st.st_size, st.st_mtime_ns, slot=int(item_id), route="file", delivery="file", at=0.0)


def _snapshot(client) -> dict:
    return {k: client.dump(k) for k in sorted(client.keys("*"))}


def test_dry_run_prints_every_kind_of_change_and_writes_nothing(tmp_path, redis_client, redis_url, sandbox):
    folder = tmp_path / "inbox"
    (folder / "sub").mkdir(parents=True)
    ledger = Ledger(redis_client, BOARD)
    redis_client.set(f"miro-sync:board:{BOARD}:schema", "2")
    for i, name in enumerate(["same.png", "edited.png", "renamed.png", "moved.png", "deleted.png"]):
        make_image(folder / name, seed=i)
        ledger.record(name, _entry(str(i), folder / name))
    make_image(folder / "edited.png", seed=20)
    os.rename(folder / "renamed.png", folder / "renamed-now.png")
    os.rename(folder / "moved.png", folder / "sub" / "moved.png")
    os.unlink(folder / "deleted.png")
    make_image(folder / "new.png", seed=30)
    env = {"MIRO_SYNC_ENV_FILE": "/nonexistent", "WATCH_FOLDER": str(folder), "REDIS_URL": redis_url, "MIRO_BOARD_ID": BOARD,
           "MIRO_API_URL": sandbox.url, "MIRO_ACCESS_TOKEN": TOKEN}
    before, requests_before = _snapshot(redis_client), requests.get(f"{sandbox.url}/_sandbox/requests", timeout=5).json()
    proc = cli(env, "sync", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    lines = set(proc.stdout.splitlines())
    assert {"would upload: new.png", "would update: edited.png", "would retitle: renamed-now.png (from renamed.png)",
            "would move: sub/moved.png (from moved.png)", "would remove: deleted.png (ON_DELETE=keep)"} <= lines, proc.stdout
    assert "dry run, nothing written: would upload 1, update 1, retitle 1, move 1, remove 1, hold 0, skip 0 duplicates" in lines
    assert _snapshot(redis_client) == before
    assert requests.get(f"{sandbox.url}/_sandbox/requests", timeout=5).json() == requests_before


def test_dry_run_with_nothing_to_do_gives_every_total(tmp_path, redis_url):
    folder = tmp_path / "inbox"
    folder.mkdir()
    env = {"MIRO_SYNC_ENV_FILE": "/nonexistent", "WATCH_FOLDER": str(folder), "REDIS_URL": redis_url, "MIRO_BOARD_ID": BOARD}
    proc = cli(env, "sync", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["totals"] == {"upload": 0, "update": 0, "retitle": 0, "move": 0, "remove": 0, "held": 0, "duplicate": 0}
    text = cli(env, "sync", "--dry-run").stdout
    assert text == "dry run, nothing written: would upload 0, update 0, retitle 0, move 0, remove 0, hold 0, skip 0 duplicates\n", text


def test_forget_makes_the_next_scan_upload_again(local_stack):
    local_stack.env["FOLDERS"] = "flat"
    local_stack.start()
    make_image(local_stack.folder / "again.png", seed=5)
    first = local_stack.wait_items(1)[0]
    # The job must be over before the rescan: a job still running for this version keeps its id taken.
    local_stack.wait_idle()
    api(local_stack, "DELETE", f"/items/{first['id']}")  # deleted by hand, wanted back
    proc = cli(local_stack.service_env(), "forget", "again.png")
    assert proc.returncode == 0 and "forgotten: again.png" in proc.stdout, proc.stderr
    proc = cli(local_stack.service_env(), "watch", "--once")
    assert proc.returncode == 0, proc.stderr
    item = local_stack.wait_items(1)[0]
    assert item["id"] != first["id"] and item["data"]["title"] == "again.png"
    assert cli(local_stack.service_env(), "forget", "never.png").returncode == 1


def test_an_item_kept_after_its_file_was_deleted_is_reported_as_kept_not_foreign(local_stack):
    local_stack.env.update({"DELETE_SETTLE_SECONDS": "0.5", "FOLDERS": "flat"})  # ON_DELETE=keep, the default
    local_stack.start()
    for i in range(2):
        make_image(local_stack.folder / f"p{i}.png", seed=i)
    local_stack.wait_items(2)
    (local_stack.folder / "p0.png").unlink()  # its item stays on the board; its ledger entry goes
    wait_for(lambda: local_stack.ledger().released("p0.png"), 30, what=lambda: local_stack.log()[-2000:])
    code, found = check(local_stack)
    assert code == 0 and found["in_sync"] and (found["kept"], found["not_ours"]) == (1, 0), found
    text = cli(local_stack.service_env(), "check").stdout
    assert "1 kept after its file was deleted (ON_DELETE=keep)" in text and "0 not made by miro-sync" in text, text
