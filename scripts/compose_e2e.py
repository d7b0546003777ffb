"""The checks of `scripts/compose-e2e`: the compose stack under podman, as a user would see it.

Run by scripts/compose-e2e (which installs podman and podman-compose and provides the base images);
standard library only, so it runs before any project virtualenv exists. Each check prints one line;
on failure the containers' last log lines are printed, and the stack is always torn down (volumes
included) unless --keep is given.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import secrets
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a file, before any virtualenv: shared/processes.py is standard library only
from shared import processes  # noqa: E402
from shared.processes import free_port  # noqa: E402

STATE = Path(os.environ.get("MIRO_SYNC_E2E_STATE", "/var/tmp/miro-sync-e2e"))
PODMAN_COMPOSE = os.environ.get("PODMAN_COMPOSE", "podman-compose")
PROJECT = "miro-sync-e2e"
BOARD = "sandbox-board="  # as compose.sandbox.yml starts the sandbox
QUEUE = "miro-sync"
WORKERS = 3
BURST = 30
# Every project service runs the one image (`x-app` in docker-compose.yml). podman-compose's `build`
# builds it once per service that declares it, six at once on two cores: 130 s and four CPU-minutes
# on a quiet machine, against about 30 s for one. One service's build makes the image the others
# name, and `up` builds only what is missing.
BUILT_SERVICE = "worker"
AARDVARK_DIR = Path("/run/containers/networks/aardvark-dns")
"""Rootful netavark's run-time folder for aardvark-dns: one name table per network, and its pid file."""
# docker-compose.yml's depends_on, dependents first; what is left (Redis) goes with the pod.
STOP_ORDER = (("worker", "watcher", "dashboard", "metrics", "ngrok"), ("image-server", "sandbox"))


class CheckFailed(AssertionError):
    pass


def say(message: str) -> None:
    print(f"[compose-e2e {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.25):
    return processes.wait_for(predicate, timeout, what, interval, error=CheckFailed,
                              tolerate=(OSError, ValueError, KeyError, urllib.error.URLError))


# --- pictures, made and checked with the standard library -------------------------------------


def make_png(seed: int, width: int = 48, height: int = 36) -> bytes:
    """A small RGB PNG whose pixels (and so bytes) differ for every seed."""
    rows = b"".join(
        b"\x00" + bytes(((x * 7 + seed * 31) % 256, (y * 11 + seed * 17) % 256, (x * y + seed * 5) % 256)[c]
                        for x in range(width) for c in range(3))
        for y in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def png_decodes(data: bytes) -> bool:
    """Every chunk's CRC holds and the pixel data inflates to exactly the rows IHDR announces."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return False
    pos, idat, header = 8, b"", None
    while pos + 8 <= len(data):
        length, tag = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        if len(body) != length or zlib.crc32(tag + body) != crc:
            return False
        if tag == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif tag == b"IDAT":
            idat += body
        elif tag == b"IEND":
            break
        pos += 12 + length
    if header is None or header[2:5] != (8, 2, 0):
        return False
    width, height = header[0], header[1]
    return len(zlib.decompress(idat)) == height * (1 + width * 3)


# --- HTTP ---------------------------------------------------------------------------------------


def http(url: str, method: str = "GET", auth: tuple[str, str] | None = None, body: dict | None = None,
         timeout: float = 5) -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def http_json(url: str, **kwargs) -> dict:
    status, body = http(url, **kwargs)
    if status != 200:
        raise ValueError(f"{url}: HTTP {status}")
    return json.loads(body)


# --- the stack ----------------------------------------------------------------------------------


class Stack:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.inbox = workdir / "inbox"
        self.inbox.mkdir()
        self.sandbox_port = free_port()
        self.dashboard_port = free_port()
        self.login = ("e2e", secrets.token_hex(12))
        self.env_file = workdir / "e2e.env"
        # One file serves both as the services' env_file and for ${...} interpolation, so a
        # developer's own .env in the checkout is neither read nor touched.
        settings = {
            "MIRO_SYNC_ENV_FILE": str(self.env_file),
            "WATCH_FOLDER_HOST": str(self.inbox),
            "SANDBOX_PORT": str(self.sandbox_port),
            "DASHBOARD_PORT": str(self.dashboard_port),
            "DASHBOARD_USERNAME": self.login[0],
            "DASHBOARD_PASSWORD": self.login[1],
            "BASE_IMAGE": os.environ.get("BASE_IMAGE", "python:3.12-slim"),
            "LOG_FORMAT": "json",
        }
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        self.env = {**os.environ, **settings}
        self.sandbox = f"http://127.0.0.1:{self.sandbox_port}"
        self.dashboard = f"http://127.0.0.1:{self.dashboard_port}"

    def compose(self, *args: str, files=("docker-compose.yml", "compose.sandbox.yml"), check: bool = True,
                quiet: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        command = [PODMAN_COMPOSE, "-p", PROJECT, "--env-file", str(self.env_file)]
        for name in files:
            command += ["-f", name]
        command += list(args)
        done = subprocess.run(command, cwd=ROOT, env=self.env, text=True, timeout=timeout,
                              stdout=subprocess.PIPE if quiet else None, stderr=subprocess.STDOUT if quiet else None)
        if check and done.returncode != 0:
            raise CheckFailed(f"{' '.join(command[3:])} failed ({done.returncode}):\n{(done.stdout or '')[-3000:]}")
        return done

    def down(self, volumes: bool = False) -> None:
        """`down` (with `-v`: and the volumes), replicas from `--scale` included.

        podman-compose's `down` knows one container per service, so it would leave workers 2 and 3
        running (and then fail to remove what they depend on). So the containers are stopped here
        first, in the order `docker compose down` stops them: dependents before what they depend on.
        Stopping the pod stops all at once, and a worker whose SIGTERM came with Redis's then spent
        25 s looking up a name that was gone before it could say it stopped.
        """
        for tier in STOP_ORDER:
            names = [name for service in tier for name in self.containers(service)]
            if names:
                subprocess.run(["podman", "stop", "-t", "30", *names], capture_output=True)
        pod = f"pod_{PROJECT}"
        subprocess.run(["podman", "pod", "stop", "-t", "30", pod], capture_output=True)
        self.compose("down", *(["-v"] if volumes else []), check=False)
        subprocess.run(["podman", "pod", "rm", "-f", pod], capture_output=True)
        if volumes:
            for volume in ("redis-data", "sandbox-data"):
                subprocess.run(["podman", "volume", "rm", "-f", f"{PROJECT}_{volume}"], capture_output=True)
        subprocess.run(["podman", "network", "rm", "-f", f"{PROJECT}_default"], capture_output=True)
        # netavark leaves the network's name table behind when a container went without its teardown
        # (a failed run); the aardvark-dns daemon then never exits, and answers for the next run.
        stale = AARDVARK_DIR / f"{PROJECT}_default"
        if stale.exists() and not self.containers():
            stale.unlink(missing_ok=True)

    def containers(self, service: str | None = None) -> list[str]:
        command = ["podman", "ps", "-a", "--format", "{{.Names}}", "--filter", f"label=com.docker.compose.project={PROJECT}"]
        if service:
            command += ["--filter", f"label=com.docker.compose.service={service}"]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        return sorted(line for line in out.splitlines() if line)

    def dump_logs(self, lines: int = 40) -> None:
        for name in self.containers():
            out = subprocess.run(["podman", "logs", "--tail", str(lines), name], capture_output=True, text=True)
            say(f"--- last {lines} log lines of {name} ---")
            print((out.stdout + out.stderr).rstrip(), file=sys.stderr)

    def items(self) -> list[dict]:
        body = http_json(f"{self.sandbox}/_sandbox/boards/{BOARD}/items")
        return [i for i in body["items"] if i.get("type") == "image"]

    def up(self) -> None:
        self.compose("up", "-d", "--scale", f"worker={WORKERS}")
        wait_for(lambda: http(f"{self.sandbox}/_sandbox/stats")[0] == 200, 60, "the sandbox on its published port")
        wait_for(lambda: http(self.dashboard)[0] == 401, 60, "the dashboard on its published port")
        wait_for(lambda: len(self.workers()) >= WORKERS, 60, f"{WORKERS} workers registered in Redis")

    def workers(self) -> list[dict]:
        return http_json(f"{self.dashboard}/0/data/workers.json", auth=self.login)["workers"]

    def copy_in(self, first_seed: int, count: int, staging: Path) -> dict[str, str]:
        """Write ``count`` new pictures into the inbox the way a copy does; returns sha256 -> name."""
        made = {}
        for seed in range(first_seed, first_seed + count):
            data = make_png(seed)
            name = f"picture-{seed:03d}.png"
            (staging / name).write_bytes(data)
            made[hashlib.sha256(data).hexdigest()] = name
        for name in made.values():
            shutil.copyfile(staging / name, self.inbox / name)
        return made


def check_board(stack: Stack, expected: dict[str, str], timeout: float, what: str) -> list[dict]:
    """All expected pictures on the board exactly once, in distinct cells, byte for byte, decodable."""
    wait_for(lambda: len(stack.items()) >= len(expected), timeout, f"{len(expected)} pictures on the board ({what})")
    time.sleep(3)  # a late duplicate would show up here
    items = stack.items()
    by_sha: dict[str, list[dict]] = {}
    for item in items:
        by_sha.setdefault(item.get("bytes_sha256"), []).append(item)
    missing = [expected[s] for s in expected if s not in by_sha]
    doubled = {expected.get(s, s): len(v) for s, v in by_sha.items() if len(v) > 1}
    strangers = [s for s in by_sha if s not in expected]
    if missing or doubled or strangers or len(items) != len(expected):
        raise CheckFailed(f"{what}: {len(items)} items for {len(expected)} pictures; missing {missing[:5]}, "
                          f"duplicated {doubled}, unexpected {strangers[:5]}")
    cells = {(round(i["board_position"]["x"]), round(i["board_position"]["y"])) for i in items}
    if len(cells) != len(items):
        raise CheckFailed(f"{what}: {len(items)} items share {len(cells)} positions")
    for item in items:
        status, data = http(stack.sandbox + item["blob_url"])
        if status != 200 or hashlib.sha256(data).hexdigest() != item["bytes_sha256"] or not png_decodes(data):
            raise CheckFailed(f"{what}: the bytes of {item['data'].get('title')} on the board do not decode")
    return items


def check_dashboard(stack: Stack) -> None:
    url = f"{stack.dashboard}/0/data/queues.json"
    if http(url)[0] != 401 or http(url, auth=(stack.login[0], "wrong"))[0] != 401:
        raise CheckFailed("the dashboard answers without the right credentials")
    queues = http_json(url, auth=stack.login)["queues"]
    if QUEUE not in [q["name"] for q in queues]:
        raise CheckFailed(f"the dashboard does not list the queue {QUEUE!r}: {queues}")
    if len(stack.workers()) != WORKERS:
        raise CheckFailed("the dashboard does not list the workers")
    # Published on the host's loopback only: podman reports the host side of the port mapping.
    (container,) = stack.containers("dashboard")
    mapping = subprocess.run(["podman", "port", container], capture_output=True, text=True, check=True).stdout.split()
    hosts = {m.rsplit(":", 1)[0] for m in mapping if ":" in m}
    if hosts != {"127.0.0.1"}:
        raise CheckFailed(f"the dashboard is published on {mapping}, not on 127.0.0.1 only")


def check_required_variables(stack: Stack) -> None:
    """.env.example copied as it is validates with the sandbox override (which sets a dashboard login);
    an env file without the dashboard's login lines is refused, naming the variable."""
    example = stack.workdir / "example.env"
    example.write_text((ROOT / ".env.example").read_text())
    env = {k: v for k, v in stack.env.items() if not k.startswith("DASHBOARD_")}
    env["MIRO_SYNC_ENV_FILE"] = str(example)

    def config(*files: str) -> subprocess.CompletedProcess:
        command = ["docker-compose", "--env-file", str(example)]
        for name in files:
            command += ["-f", name]
        return subprocess.run([*command, "config", "-q"], cwd=ROOT, env=env, capture_output=True, text=True)

    done = config("docker-compose.yml", "compose.sandbox.yml")
    if done.returncode != 0:
        raise CheckFailed(f".env.example as it is, with the sandbox override: config -q: {done.stderr.strip()}")
    example.write_text("".join(line for line in (ROOT / ".env.example").read_text().splitlines(keepends=True)
                               if not line.startswith("DASHBOARD_PASSWORD=")))
    done = config("docker-compose.yml")
    if done.returncode == 0 or "set DASHBOARD_PASSWORD in .env" not in done.stderr:
        raise CheckFailed(f"without DASHBOARD_PASSWORD, config -q did not refuse naming it: {done.stderr.strip()}")


HEALTHCHECKED = ("image-server", "watcher", "worker", "dashboard", "metrics")
"""Services whose compose healthcheck must report healthy."""
NO_TOKEN = ("image-server", "dashboard", "metrics")
"""Services that must not hold the Miro token (the image server is the public one, through the tunnel)."""


def check_healthchecks(stack: Stack) -> None:
    """Each container's healthcheck reaches healthy. podman runs healthchecks from systemd timers, which
    this machine may lack: `podman healthcheck run` runs one now and records its result."""
    for service in HEALTHCHECKED:
        containers = stack.containers(service)
        if not containers:
            raise CheckFailed(f"no container for the service {service}")
        for container in containers:
            wait_for(lambda c=container: subprocess.run(["podman", "healthcheck", "run", c], capture_output=True).returncode == 0,
                     60, f"the healthcheck of {container} to pass", interval=1)
            state = subprocess.run(["podman", "inspect", "--format", "{{.State.Health.Status}}", container],
                                   capture_output=True, text=True, check=True).stdout.strip()
            if state != "healthy":
                raise CheckFailed(f"{container}: health {state!r} after a passing healthcheck")


def check_no_token(stack: Stack) -> None:
    """The containers that never call Miro have no Miro token in their environment."""
    for service in NO_TOKEN:
        for container in stack.containers(service):
            env = json.loads(subprocess.run(["podman", "inspect", "--format", "{{json .Config.Env}}", container],
                                            capture_output=True, text=True, check=True).stdout)
            leaked = [e.split("=", 1)[0] for e in env if e.startswith("MIRO_ACCESS_TOKEN=") or "sandbox-token" in e]
            if leaked:
                raise CheckFailed(f"{container} has the Miro token in its environment ({leaked})")


def check_metrics(stack: Stack, uploaded: int) -> None:
    """The exporter is published on 127.0.0.1 only and counts every worker's uploads."""
    (container,) = stack.containers("metrics")
    mapping = subprocess.run(["podman", "port", container], capture_output=True, text=True, check=True).stdout.split()
    hosts = {m.rsplit(":", 1)[0] for m in mapping if ":" in m}
    if hosts != {"127.0.0.1"}:
        raise CheckFailed(f"the metrics are published on {mapping}, not on 127.0.0.1 only")
    url = f"http://{mapping[-1]}/metrics"
    line = 'miro_sync_uploads_total{outcome="uploaded",route="file"} '

    def counted() -> bool:
        status, body = http(url)
        return status == 200 and any(row.startswith(line) and float(row[len(line):]) >= uploaded for row in body.decode().splitlines())

    wait_for(counted, 30, f"{uploaded} uploads counted at {url}")


def kill_a_busy_worker(stack: Stack) -> tuple[str, str]:
    """SIGKILL the container of a worker that is running a job right now (no warm shutdown)."""
    busy = wait_for(lambda: {w["name"]: w["current_job"] for w in stack.workers() if w.get("state") == "busy"
                             and isinstance(w.get("current_job"), dict)}, 30, "a busy worker", interval=0.1)
    for container in stack.containers("worker"):
        host = subprocess.run(["podman", "inspect", "--format", "{{.Config.Hostname}}", container],
                              capture_output=True, text=True, check=True).stdout.strip()
        for name, job in busy.items():
            if name.startswith(host + "-"):
                subprocess.run(["podman", "kill", "--signal", "KILL", container], capture_output=True, check=True)
                return container, job.get("description", job.get("job_id", "?"))
    raise CheckFailed(f"no worker container matches the busy workers {sorted(busy)}")


def run_checks(stack: Stack, timings: dict[str, float]) -> None:
    staging = stack.workdir / "staging"
    staging.mkdir()
    expected: dict[str, str] = {}

    for files in (("docker-compose.yml",), ("docker-compose.yml", "compose.sandbox.yml")):
        command = ["docker-compose", "--env-file", str(stack.env_file)]
        for name in files:
            command += ["-f", name]
        done = subprocess.run([*command, "config", "-q"], cwd=ROOT, env=stack.env, capture_output=True, text=True)
        if done.returncode != 0:
            raise CheckFailed(f"docker-compose config -q ({' + '.join(files)}): {done.stderr.strip()}")
    say("ok: docker-compose config -q, main file and with the sandbox override")
    check_required_variables(stack)
    say("ok: .env.example as it is validates with the sandbox override; without DASHBOARD_PASSWORD refused by name")

    t = time.monotonic()
    stack.compose("build", BUILT_SERVICE)
    timings["build"] = time.monotonic() - t
    t = time.monotonic()
    stack.up()
    timings["up"] = time.monotonic() - t
    say(f"ok: built in {timings['build']:.0f} s; up with {WORKERS} workers in {timings['up']:.0f} s")

    t = time.monotonic()
    expected.update(stack.copy_in(1, BURST, staging))
    check_board(stack, expected, 60, "first burst")
    timings["burst"] = time.monotonic() - t
    say(f"ok: {BURST} pictures on the board once each, distinct cells, decodable ({timings['burst']:.1f} s)")

    check_dashboard(stack)
    say("ok: dashboard on 127.0.0.1 only, 401 without the login, lists the queue and the workers")

    check_healthchecks(stack)
    say(f"ok: healthchecks healthy ({', '.join(HEALTHCHECKED)})")
    check_no_token(stack)
    say(f"ok: no Miro token in the environment of {', '.join(NO_TOKEN)}")
    check_metrics(stack, BURST)
    say(f"ok: metrics on 127.0.0.1 only, {BURST} uploads counted across {WORKERS} workers")

    # Slow Miro down so the burst lasts long enough to kill a worker in the middle of a job.
    http(f"{stack.sandbox}/_sandbox/faults", method="POST", body={"latency_ms": 300})
    expected.update(stack.copy_in(101, BURST, staging))
    killed, job = kill_a_busy_worker(stack)
    http(f"{stack.sandbox}/_sandbox/faults", method="DELETE")
    t = time.monotonic()
    check_board(stack, expected, 180, "burst with a killed worker")
    say(f"ok: killed {killed} while it ran {job}; nothing lost, nothing doubled ({time.monotonic() - t:.1f} s to settle)")

    before = {i["id"] for i in stack.items()}
    t = time.monotonic()
    stack.down()
    timings["down"] = time.monotonic() - t
    expected.update(stack.copy_in(201, 10, staging))  # arrive while the stack is down
    stack.up()
    items = check_board(stack, expected, 90, "after down and up")
    gone = before - {i["id"] for i in items}
    if gone:
        raise CheckFailed(f"{len(gone)} items present before `down` were replaced after `up`")
    say(f"ok: down ({timings['down']:.0f} s) and up: earlier items kept, none re-uploaded, "
        "the 10 pictures copied in meanwhile uploaded")
    check_url_route(stack, staging, expected)
    check_heic(stack)  # last: its converted item is not among `expected`, which check_board compares the board to


def check_heic(stack: Stack) -> None:
    """An iPhone photo (HEIC), made by the image's own pillow-heif, reaches the board converted and decodable."""
    (container, *_) = stack.containers("worker")
    make = ("import sys, pillow_heif; from PIL import Image; "
            "pillow_heif.from_pillow(Image.new('RGB', (320, 240), (200, 30, 30))).save(sys.stdout.buffer, quality=80)")
    done = subprocess.run(["podman", "exec", container, "python", "-c", make], capture_output=True)
    if done.returncode != 0:
        raise CheckFailed(f"the image cannot make a HEIC: {done.stderr.decode(errors='replace')[-500:]}")
    (stack.workdir / "phone.heic").write_bytes(done.stdout)
    shutil.copyfile(stack.workdir / "phone.heic", stack.inbox / "phone.heic")
    item = wait_for(lambda: next((i for i in stack.items() if i["data"].get("title") == "phone.heic"), None), 60,
                    "the HEIC photo on the board")
    if item.get("decodes") is not True or item.get("content_type") != "image/jpeg":
        raise CheckFailed(f"the HEIC photo reached the board as {item.get('content_type')}, decodes={item.get('decodes')}")
    say("ok: a HEIC photo converted by the image and shown on the board as a JPEG")


# --- the url route: UPLOAD_MODE=url through the sandbox's ngrok stand-in as the tunnel ------------


def container_of(stack: Stack, service: str) -> str:
    names = stack.containers(service)
    if not names:
        raise CheckFailed(f"no {service} container")
    return names[0]


def url_deliveries(stack: Stack) -> dict[str, str]:
    """File name -> how the ledger says it reached Miro (file, verified, unverified, repaired), read in Redis."""
    out = subprocess.run(["podman", "exec", container_of(stack, "redis"), "redis-cli", "--raw", "HGETALL",
                          f"miro-sync:board:{BOARD}:paths"], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()  # field, value, field, value...
    return {path: json.loads(value)["delivery"] for path, value in zip(lines[::2], lines[1::2])}


def set_tunnel_mode(stack: Stack, mode: str) -> None:
    """The stand-in's agent API (port 4040) is not published: ask it from inside the sandbox's container."""
    script = ("import json, urllib.request; urllib.request.urlopen(urllib.request.Request("
              f"'http://127.0.0.1:4040/_sandbox/tunnel/mode', data=json.dumps({{'mode': {mode!r}}}).encode(), method='PUT', "
              "headers={'Content-Type': 'application/json'}), timeout=5)")
    subprocess.run(["podman", "exec", container_of(stack, "sandbox"), "python3", "-c", script], capture_output=True, check=True)


def check_url_route(stack: Stack, staging: Path, expected: dict[str, str]) -> None:
    """The card's path: Miro fetches signed URLs through the tunnel; verified, and repaired (or by file) on the warning page."""
    stack.down()
    stack.env_file.write_text(stack.env_file.read_text() + "UPLOAD_MODE=url\nVERIFY_GRACE=3\n")
    stack.up()
    # Workers no longer wait for a healthy image server (the file route needs none): the url route's
    # check waits for it, as a person would before dropping pictures, or a loaded machine's slow
    # start of gunicorn is a tunnel that does not deliver (repaired, by design, not verified).
    check_healthchecks(stack)
    set_tunnel_mode(stack, "normal")
    made = stack.copy_in(301, 10, staging)
    expected.update(made)
    check_board(stack, expected, 90, "url route")
    names = set(made.values())
    wait_for(lambda: all(url_deliveries(stack).get(n) == "verified" for n in names), 60, "the url pictures to be verified")
    say("ok: UPLOAD_MODE=url through the ngrok stand-in: 10 pictures fetched by the sandbox Miro, each verified")

    set_tunnel_mode(stack, "warning-page")
    try:
        made = stack.copy_in(401, 10, staging)
        expected.update(made)
        names = set(made.values())

        def settled() -> dict[str, str] | None:
            seen = {n: d for n, d in url_deliveries(stack).items() if n in names}
            return seen if len(seen) == len(names) and set(seen.values()) <= {"repaired", "file"} else None

        seen = wait_for(settled, 90, "the pictures sent while the tunnel shows the warning page to be repaired or sent by file")
        check_board(stack, expected, 30, "url route, warning page")
    finally:
        set_tunnel_mode(stack, "normal")
    counts = {d: list(seen.values()).count(d) for d in sorted(set(seen.values()))}
    say(f"ok: tunnel showing the warning page: every picture shows ({counts})")


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    parser.add_argument("--down-only", action="store_true", help="remove a stack left by --keep, and stop")
    parser.add_argument("--build-only", action="store_true", help="build the images (podman's layer cache keeps them for the next run), and stop")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)  # a CI timeout or pytest tears down like Ctrl+C does
    STATE.mkdir(parents=True, exist_ok=True)
    for old in STATE.glob("run-*"):  # left by --keep or an interrupted run; its stack goes below
        shutil.rmtree(old, ignore_errors=True)
    workdir = Path(tempfile.mkdtemp(prefix="run-", dir=STATE))
    workdir.chmod(0o755)  # the services run as an unprivileged user and read the inbox inside it
    stack = Stack(workdir)
    if args.down_only or args.build_only:
        try:
            if args.build_only:
                t = time.monotonic()
                stack.compose("build", BUILT_SERVICE)
                say(f"ok: built in {time.monotonic() - t:.0f} s")
            else:
                stack.down(volumes=True)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return 0
    stack.down(volumes=True)  # whatever an interrupted earlier run left
    timings: dict[str, float] = {}
    started = time.monotonic()
    ok = False
    try:
        run_checks(stack, timings)
        ok = True
    except Exception as exc:  # noqa: BLE001 - any failure: say it, show the logs, tear down
        say(f"FAILED: {exc}" if isinstance(exc, CheckFailed) else f"FAILED: {exc!r}")
        stack.dump_logs()
    except KeyboardInterrupt:
        say("interrupted")
    finally:
        if args.keep:
            say(f"stack left running (sandbox {stack.sandbox}, dashboard {stack.dashboard}, login "
                f"{stack.login[0]}/{stack.login[1]}); remove it with scripts/compose-e2e --down")
        else:
            stack.down(volumes=True)
            shutil.rmtree(workdir, ignore_errors=True)
    say(f"{'passed' if ok else 'failed'} in {time.monotonic() - started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
