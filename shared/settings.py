"""One settings object for every service, read once from the environment and `.env`.

Precedence: the process environment, then the `.env` file (``MIRO_SYNC_ENV_FILE`` or ``./.env``),
then the defaults below. Every problem is reported as a :class:`SettingsError` that names the
variable and what it expects; the CLI turns it into one line on stderr and exit code 2.

Services ask only for what they use (``needs``): the image server, reachable through the tunnel,
never needs the Miro token, so it is not required to hold it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Callable, Iterable, Mapping, TypeVar
from urllib.parse import urlsplit

from dotenv import dotenv_values

MIRO_MAX_UPLOAD_BYTES = 6 * 1024 * 1024
"""Miro's limit for a multipart `resource` ("6 MB"); bytes."""


class SettingsError(ValueError):
    """A setting is missing or malformed. ``str()`` is the one line shown to the user."""

    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        self.problem = problem
        super().__init__(f"{variable} {problem}")


class UploadMode(str, Enum):
    AUTO = "auto"
    FILE = "file"
    URL = "url"


class WatchMode(str, Enum):
    AUTO = "auto"
    INOTIFY = "inotify"
    POLLING = "polling"


class DuplicatePolicy(str, Enum):
    SKIP = "skip"  # same bytes under a new name: already on the board, not uploaded again
    UPLOAD = "upload"  # every file name gets its own item, even when the bytes repeat


class DeletePolicy(str, Enum):
    KEEP = "keep"  # a file deleted: its item stays (a board is a shared space; people draw around pictures)
    REMOVE = "remove"  # the item is deleted too (Level 3: 500 credits)
    ARCHIVE = "archive"  # the item moves into the archive frame, away from the grid


class FolderMode(str, Enum):
    FRAMES = "frames"  # one frame per subfolder, titled with its relative path
    FLAT = "flat"  # every picture in the one root grid


class Need(str, Enum):
    MIRO = "miro"  # token and board
    FOLDER = "folder"  # the watch folder
    SIGNING = "signing"  # URL_SIGNING_SECRET, whatever the upload mode


@dataclass(frozen=True)
class Grid:
    """Where images go on the board: a row-major grid of equal cells (board units)."""

    columns: int = 10
    cell_width: int = 440
    cell_height: int = 440
    padding: int = 20
    origin_x: int = 0
    origin_y: int = 0
    frame_columns: int = 5  # cells per row inside a folder's (or the archive's) frame
    frame_rows: int = 4  # rows per frame; a full frame is followed by a continuation frame
    frame_gap: int = 200  # board units between frames, and between frames and the root grid


@dataclass(frozen=True)
class Settings:
    miro_access_token: str = field(repr=False)
    miro_board_id: str
    watch_folder: Path
    redis_url: str = field(repr=False)  # may carry a password
    miro_api_url: str
    upload_mode: UploadMode
    ngrok_api_url: str | None
    public_base_url: str | None
    url_signing_secret: str | None = field(repr=False)
    url_ttl_seconds: int
    watch_mode: WatchMode
    poll_interval: float
    settle_seconds: float
    rescan_interval: float
    grid: Grid
    duplicates: DuplicatePolicy
    queue_name: str
    job_timeout: int
    retry_horizon: int
    credits_per_minute: int
    rate_safety_margin: float
    max_upload_bytes: int
    keep_gps: bool  # False: a photo's GPS position never leaves the machine
    on_delete: DeletePolicy
    max_delete: int
    delete_settle: float
    folders: FolderMode
    probe_interval: int
    verify_grace: float
    image_server_bind: str
    log_format: str
    log_level: str
    other_secrets: tuple[str, ...] = field(default=(), repr=False)
    """The values of :data:`OTHER_SECRETS` (other services' credentials), from the environment or `.env`."""

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never reach a log line, an error message or a job's arguments."""
        found = [self.miro_access_token, self.url_signing_secret or "", *self.other_secrets]
        password = urlsplit(self.redis_url).password
        if password:
            found.append(password)
        return tuple(s for s in found if len(s) >= 4)

    @property
    def tunnel_configured(self) -> bool:
        return bool(self.public_base_url or self.ngrok_api_url)


OTHER_SECRETS = ("NGROK_AUTHTOKEN", "RQ_DASHBOARD_PASSWORD", "DASHBOARD_PASSWORD")
"""Variables no service here needs, but whose values are masked in every log line all the same."""

T = TypeVar("T")

_BOARD_ID = re.compile(r"^[A-Za-z0-9_\-=.~]+$")
_BOOLEANS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def load_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment over the `.env` file; empty values count as unset."""
    environ = os.environ if environ is None else environ
    env_file = environ.get("MIRO_SYNC_ENV_FILE", ".env")
    merged: dict[str, str] = {}
    if env_file and Path(env_file).is_file():
        merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    merged.update(environ)
    return {k: v for k, v in merged.items() if v.strip() != ""}


def load_settings(
    needs: Iterable[Need] = (Need.MIRO, Need.FOLDER),
    environ: Mapping[str, str] | None = None,
    create_folder: bool = True,
) -> Settings:
    """Read and validate every setting; raise :class:`SettingsError` on the first problem."""
    env = load_env(environ)
    needs = set(needs)
    r = _Reader(env)

    token = r.required("MIRO_ACCESS_TOKEN", "the Miro access token (Bearer) with boards:read and boards:write") if Need.MIRO in needs else env.get("MIRO_ACCESS_TOKEN", "")
    board = r.required("MIRO_BOARD_ID", "the board id, the part after /app/board/ in the board's address") if Need.MIRO in needs else env.get("MIRO_BOARD_ID", "")
    if board and not _BOARD_ID.match(board):
        raise SettingsError("MIRO_BOARD_ID", f"is not a board id ({board!r}); copy the part after /app/board/ in the board's address, e.g. uXjVOabc123=")

    folder_raw = r.required("WATCH_FOLDER", "the folder to watch for images (a path)") if Need.FOLDER in needs else env.get("WATCH_FOLDER", ".")
    folder = Path(folder_raw).expanduser()
    if Need.FOLDER in needs:
        folder = _prepare_folder(folder, create_folder)

    mode = r.enum("UPLOAD_MODE", UploadMode, UploadMode.AUTO)
    ngrok_api = r.url("NGROK_API_URL", None)
    public_base = r.url("PUBLIC_BASE_URL", None)
    secret = env.get("URL_SIGNING_SECRET")
    uses_urls = mode is UploadMode.URL or (mode is UploadMode.AUTO and (ngrok_api or public_base))
    if secret is not None and len(secret) < 16:
        raise SettingsError("URL_SIGNING_SECRET", "is too short; use at least 16 random characters (e.g. `openssl rand -hex 32`)")
    if secret is None and (Need.SIGNING in needs or (Need.MIRO in needs and uses_urls)):
        raise SettingsError("URL_SIGNING_SECRET", "is not set; the url upload route signs image URLs with it (e.g. `openssl rand -hex 32`)")
    if mode is UploadMode.URL and Need.MIRO in needs and not (ngrok_api or public_base):
        raise SettingsError("UPLOAD_MODE", "is 'url' but neither NGROK_API_URL nor PUBLIC_BASE_URL is set; set one, or use UPLOAD_MODE=auto")

    grid = Grid(
        columns=r.integer("GRID_COLUMNS", 10, minimum=1),
        cell_width=r.integer("GRID_CELL_WIDTH", 440, minimum=20),
        cell_height=r.integer("GRID_CELL_HEIGHT", 440, minimum=20),
        padding=r.integer("GRID_PADDING", 20, minimum=0),
        origin_x=r.integer("GRID_ORIGIN_X", 0),
        origin_y=r.integer("GRID_ORIGIN_Y", 0),
        frame_columns=r.integer("FRAME_COLUMNS", 5, minimum=1, maximum=100),
        frame_rows=r.integer("FRAME_ROWS", 4, minimum=1, maximum=100),
        frame_gap=r.integer("FRAME_GAP", 200, minimum=0, maximum=100_000),
    )
    if 2 * grid.padding >= min(grid.cell_width, grid.cell_height):
        raise SettingsError("GRID_PADDING", f"({grid.padding}) leaves no room in a {grid.cell_width}x{grid.cell_height} cell")

    log_format = r.choice("LOG_FORMAT", ("auto", "json", "text"), "auto")
    log_level = r.choice("LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO", upper=True)

    return Settings(
        miro_access_token=token,
        miro_board_id=board,
        watch_folder=folder,
        redis_url=r.redis_url("REDIS_URL", "redis://localhost:6379/0"),
        miro_api_url=r.url("MIRO_API_URL", "https://api.miro.com") or "https://api.miro.com",
        upload_mode=mode,
        ngrok_api_url=ngrok_api,
        public_base_url=public_base,
        url_signing_secret=secret,
        url_ttl_seconds=r.integer("URL_TTL_SECONDS", 600, minimum=30, maximum=86400),
        watch_mode=r.enum("WATCH_MODE", WatchMode, WatchMode.AUTO),
        poll_interval=r.number("POLL_INTERVAL", 1.0, minimum=0.1),
        settle_seconds=r.number("SETTLE_SECONDS", 1.0, minimum=0.0),
        rescan_interval=r.number("RESCAN_INTERVAL", 300.0, minimum=0.0),
        grid=grid,
        duplicates=r.enum("DUPLICATES", DuplicatePolicy, DuplicatePolicy.SKIP),
        queue_name=r.pattern("QUEUE_NAME", r"^[A-Za-z0-9_\-]+$", "miro-sync", "letters, digits, _ and -"),
        job_timeout=r.integer("JOB_TIMEOUT", 180, minimum=10),
        retry_horizon=r.integer("RETRY_HORIZON", 86400, minimum=0),
        credits_per_minute=r.integer("MIRO_CREDITS_PER_MINUTE", 100_000, minimum=100),
        rate_safety_margin=r.number("RATE_SAFETY_MARGIN", 0.95, minimum=0.1, maximum=1.0),
        max_upload_bytes=r.integer("MAX_UPLOAD_BYTES", MIRO_MAX_UPLOAD_BYTES, minimum=1024, maximum=MIRO_MAX_UPLOAD_BYTES),
        keep_gps=r.boolean("KEEP_GPS", False),
        on_delete=r.enum("ON_DELETE", DeletePolicy, DeletePolicy.KEEP),
        max_delete=r.integer("MAX_DELETE", 50, minimum=0, maximum=1_000_000),
        delete_settle=r.number("DELETE_SETTLE_SECONDS", 10.0, minimum=0.0, maximum=3600.0),
        folders=r.enum("FOLDERS", FolderMode, FolderMode.FRAMES),
        probe_interval=r.integer("PROBE_INTERVAL", 300, minimum=5),
        verify_grace=r.number("VERIFY_GRACE", 5.0, minimum=0.0),
        image_server_bind=r.pattern("IMAGE_SERVER_BIND", r"^[^\s:]*:\d{1,5}$", "127.0.0.1:8000", "host:port"),
        log_format=log_format,
        log_level=log_level,
        other_secrets=tuple(env.get(name, "") for name in OTHER_SECRETS),
    )


def _prepare_folder(folder: Path, create: bool) -> Path:
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingsError("WATCH_FOLDER", f"({folder}) cannot be created: {exc.strerror}") from None
    if not folder.is_dir():
        raise SettingsError("WATCH_FOLDER", f"({folder}) is not a folder")
    if not os.access(folder, os.R_OK | os.X_OK):
        raise SettingsError("WATCH_FOLDER", f"({folder}) is not readable by this user (uid {os.getuid()})")
    return folder.resolve()


class _Reader:
    """Typed access to the merged environment; each failure names its variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def required(self, name: str, what: str) -> str:
        value = self.env.get(name, "").strip()
        if not value:
            raise SettingsError(name, f"is not set; expected {what}")
        return value

    def _parse(self, name: str, default: T, convert: Callable[[str], T], expected: str) -> T:
        raw = self.env.get(name)
        if raw is None:
            return default
        try:
            return convert(raw.strip())
        except (ValueError, TypeError):
            raise SettingsError(name, f"is {raw!r}; expected {expected}") from None

    def integer(self, name: str, default: int, minimum: int | None = None, maximum: int | None = None) -> int:
        return self._bounded(name, self._parse(name, default, int, "a whole number"), minimum, maximum)

    def number(self, name: str, default: float, minimum: float | None = None, maximum: float | None = None) -> float:
        return self._bounded(name, self._parse(name, default, float, "a number"), minimum, maximum)

    def _bounded(self, name, value, minimum, maximum):
        if minimum is not None and value < minimum:
            raise SettingsError(name, f"is {value}; expected at least {minimum}")
        if maximum is not None and value > maximum:
            raise SettingsError(name, f"is {value}; expected at most {maximum}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        def convert(v: str) -> bool:
            if v.lower() not in _BOOLEANS:
                raise ValueError(v)
            return _BOOLEANS[v.lower()]

        return self._parse(name, default, convert, "true or false (also 1/0, yes/no, on/off)")

    def enum(self, name: str, kind: type[Enum], default):
        values = "|".join(m.value for m in kind)
        return self._parse(name, default, lambda v: kind(v.lower()), f"one of {values}")

    def choice(self, name: str, options: tuple[str, ...], default: str, upper: bool = False) -> str:
        def convert(v: str) -> str:
            v = v.upper() if upper else v.lower()
            if v not in options:
                raise ValueError(v)
            return v

        return self._parse(name, default, convert, "one of " + "|".join(options))

    def pattern(self, name: str, regex: str, default: str, expected: str) -> str:
        def convert(v: str) -> str:
            if not re.match(regex, v):
                raise ValueError(v)
            return v

        return self._parse(name, default, convert, expected)

    def url(self, name: str, default: str | None) -> str | None:
        def convert(v: str) -> str:
            parts = urlsplit(v)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(v)
            return v.rstrip("/")

        return self._parse(name, default, convert, "an http:// or https:// address")

    def redis_url(self, name: str, default: str) -> str:
        raw = self.env.get(name, default).strip()
        if urlsplit(raw).scheme not in ("redis", "rediss", "unix"):
            # Never echo the value: it may hold the Redis password.
            raise SettingsError(name, "is not a Redis address; expected redis://[:password@]host:port/db")
        return raw
