"""One settings object for every service, read once from the environment and `.env`.

Precedence: the process environment, then the `.env` file (``MIRO_SYNC_ENV_FILE`` or ``./.env``),
then the defaults below; an empty value counts as unset. Every problem is reported as a
:class:`SettingsError` that names the variable and what it expects; the CLI turns it into one line
on stderr and exit code 2.

Services ask only for what they use (``needs``): the image server, reachable through the tunnel,
never needs the Miro token, so it is not required to hold it.

Each setting is declared once, as a field of :class:`Settings` (or :class:`Grid`) made by
:func:`setting`: variable, type (the annotation), default, bounds, doc and its section of
`.env.example`. The loader and the `.env.example` writer (``python -m shared.settings``) both read
that declaration, and a test fails when `.env.example` differs from what the writer prints.
Dataclass field metadata rather than pydantic-settings: the one-line, variable-naming messages
(and the promise never to echo a Redis URL) would need a translation layer over pydantic's
errors, nested ``GRID_*`` names a custom source, and the "required only for this service"
logic a validator per service; the plain reader below is about 90 lines and adds no dependency.
Relations between settings (padding vs cell size, the url route's secret) stay as code in
:func:`load_settings`, after every single value has been read.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any, TypeVar, get_args, get_type_hints
from urllib.parse import urlsplit

from dotenv import dotenv_values

from .circuit import Limits

MIRO_MAX_UPLOAD_BYTES = 6 * 1024 * 1024
"""Miro's limit for a multipart `resource` ("6 MB"); bytes."""
MIRO_AUTHORIZE_URL = "https://miro.com/oauth/authorize"


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


# StrEnum (not str, Enum): logging.setLevel and f-strings see the plain value.
class LogFormat(StrEnum):
    AUTO = "auto"  # text on a terminal, JSON otherwise
    JSON = "json"
    TEXT = "text"


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class Need(str, Enum):
    MIRO = "miro"  # token and board
    BOARD = "board"  # the board id alone (it keys the ledger): commands that read Redis, the watcher
    FOLDER = "folder"  # the watch folder


class Check(StrEnum):
    """Extra validation of a text setting, beyond its type."""

    NONE = "none"
    URL = "url"  # http:// or https:// with a host; a trailing / is dropped
    REDIS_URL = "redis_url"  # redis://, rediss:// or unix://; never echoed (it may hold a password)


@dataclass(frozen=True)
class Section:
    """A block of `.env.example`; :data:`SECTIONS` gives their order."""

    title: str
    intro: str = ""


REQUIRED = Section("required")
OAUTH_APP = Section("an app with expiring tokens (instead of MIRO_ACCESS_TOKEN)")
COMPOSE = Section("Docker Compose only")
CONNECTIONS = Section("connections")
ROUTE = Section("how pictures reach Miro")
MIRROR = Section("keeping the board in step with the folder")
WATCHING = Section("watching")
LAYOUT = Section("layout on the board", "A grid of equal cells, filled row by row from the origin (board units; the board centre is 0,0).")
QUEUE = Section("queue, retries and Miro's rate limit")
SERVER_AND_LOGS = Section("image server and logs")
SECTIONS = (REQUIRED, OAUTH_APP, COMPOSE, CONNECTIONS, ROUTE, MIRROR, WATCHING, LAYOUT, QUEUE, SERVER_AND_LOGS)


@dataclass(frozen=True)
class Var:
    """The declaration of one environment variable; its type is the annotation of its field."""

    env: str
    doc: str  # one line; a few lines joined by "\n" where `.env.example` needs to say more
    section: Section
    default: Any = None  # the value when unset; None: no value
    minimum: float | None = None
    maximum: float | None = None
    needed_by: Need | None = None  # must be set when the service asks for this need; else the default
    expected: str = ""  # how a valid value looks, for the error line (required and pattern settings)
    pattern: str | None = None  # a text value must match it
    check: Check = Check.NONE
    example: str | None = None  # shown in `.env.example` instead of the default
    secret: bool = False  # kept out of repr()

    def example_value(self) -> str:
        if self.example is not None:
            return self.example
        value = self.default
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, Enum):
            return str(value.value)
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)


def setting(env: str, doc: str, section: Section, **declaration: Any) -> Any:
    """A dataclass field declared as the environment variable ``env`` (see :class:`Var`)."""
    var = Var(env, doc, section, **declaration)
    default = var.default if "default" in declaration else dataclasses.MISSING
    return field(default=default, repr=not var.secret, metadata={"var": var})


@dataclass(frozen=True, kw_only=True)
class Grid:
    """Where images go on the board: a row-major grid of equal cells (board units)."""

    columns: int = setting("GRID_COLUMNS", "Cells per row.", LAYOUT, default=10, minimum=1)
    cell_width: int = setting("GRID_CELL_WIDTH", "Width of a cell; a picture is scaled to fit inside the padding.", LAYOUT, default=440, minimum=20)
    cell_height: int = setting("GRID_CELL_HEIGHT", "Height of a cell.", LAYOUT, default=440, minimum=20)
    padding: int = setting("GRID_PADDING", "Space kept free on every side inside a cell.", LAYOUT, default=20, minimum=0)
    origin_x: int = setting("GRID_ORIGIN_X", "Board x of the grid's left edge.", LAYOUT, default=0)
    origin_y: int = setting("GRID_ORIGIN_Y", "Board y of the grid's top edge.", LAYOUT, default=0)
    frame_columns: int = setting(
        "FRAME_COLUMNS", "Each subfolder's frame: FRAME_COLUMNS cells (of the size above) wide, FRAME_ROWS rows tall at first, and a row\n"
        "taller whenever it fills; each folder's frame hangs in a column of its own right of the grid. The archive frame:\n"
        "FRAME_COLUMNS x FRAME_ROWS cells, a full one continued by \"miro-sync archive (2)\". FRAME_GAP: board units between frames.",
        LAYOUT, default=5, minimum=1, maximum=100,
    )
    frame_rows: int = setting("FRAME_ROWS", "", LAYOUT, default=4, minimum=1, maximum=100)
    frame_gap: int = setting("FRAME_GAP", "", LAYOUT, default=200, minimum=0, maximum=100_000)


_TOKEN_DOC = """A Miro access token with boards:read and boards:write (Miro app settings, "Install app and get OAuth token").
An app created with expiring tokens: set the three MIRO_CLIENT_*/MIRO_REFRESH_TOKEN lines below instead."""
_TOKEN_EXPECTED = ("the Miro access token (Bearer) with boards:read and boards:write, "
                   "or MIRO_CLIENT_ID and MIRO_CLIENT_SECRET for an app with expiring tokens")
_CLIENT_DOC = """Client ID and Client secret from the app's settings page. With these set, the token pair is refreshed
automatically (one refresh for all workers) and kept in Redis; run `miro-sync login` once to store a pair."""
_REFRESH_DOC = """Optional: a refresh token you already have (with MIRO_ACCESS_TOKEN as its access token, if you have it).
Used only when no pair is stored yet: after the first refresh it is dead and the stored pair is used."""
_TOKEN_KEY_DOC = """Optional: encrypt the stored pair in Redis with this Fernet key; every service needs the same key. Make one with
  python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"""
_UPLOAD_MODE_DOC = """auto: upload the bytes (multipart, up to 6 MB); larger images go by URL through the tunnel when one
      works, else are downscaled to fit. file: always upload bytes. url: let Miro fetch a signed URL
      (verified; repaired by upload when Miro got ngrok's warning page instead of the picture; by file
      while the tunnel is set aside, see CIRCUIT_FAILURES)."""
_CIRCUIT_DOC = """The tunnel is set aside (new pictures go by file, in UPLOAD_MODE=url too) when the probe sees an ngrok
page (warning page, offline, over quota), or when CIRCUIT_FAILURES pictures (1..1000) were not fetched by
Miro within CIRCUIT_WINDOW seconds (1..86400). Set aside by a probe, the URL route resumes at the next
passing probe; set aside by failed pictures, only after CIRCUIT_COOLDOWN seconds (0..86400) and a passing probe."""
_KEEP_GPS_DOC = """false (default): a photo's GPS position (EXIF, XMP) is cut out before it leaves this machine, pixels and other
      tags untouched, and such a file never goes by URL. true: files that go as they are keep it."""
_WATCH_MODE_DOC = """auto: inotify where it works, else polling. polling: needed for Docker Desktop (macOS/Windows) bind
mounts, WSL /mnt/c, NFS and SMB shares, where file events do not arrive."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Every setting, in the order `.env.example` lists them within each section."""

    miro_access_token: str = setting(
        "MIRO_ACCESS_TOKEN", _TOKEN_DOC, REQUIRED, default="", secret=True, expected=_TOKEN_EXPECTED,
        # needed by Need.MIRO unless MIRO_CLIENT_ID is set: see check_required
    )
    miro_board_id: str = setting(
        "MIRO_BOARD_ID", "The board id: the part after /app/board/ in the board's address, e.g. uXjVOabc123=", REQUIRED,
        default="", needed_by=Need.BOARD, expected="the board id, the part after /app/board/ in the board's address",
    )
    watch_folder: Path = setting(
        "WATCH_FOLDER", "The folder to watch (it must exist). Docker Compose sets it itself (/data/inbox): use WATCH_FOLDER_HOST there.",
        REQUIRED, default=Path("."), needed_by=Need.FOLDER, expected="the folder to watch for images (a path)", example="./inbox",
    )
    miro_client_id: str = setting(
        "MIRO_CLIENT_ID", _CLIENT_DOC, OAUTH_APP, default="", pattern=r"^[A-Za-z0-9_\-.]+$",
        expected="a client id; copy the Client ID from the app's settings page (digits)",
    )
    miro_client_secret: str = setting("MIRO_CLIENT_SECRET", "", OAUTH_APP, default="", secret=True)
    miro_refresh_token: str = setting("MIRO_REFRESH_TOKEN", _REFRESH_DOC, OAUTH_APP, default="", secret=True)
    miro_token_key: str | None = setting("MIRO_TOKEN_KEY", _TOKEN_KEY_DOC, OAUTH_APP, default=None, secret=True)
    miro_authorize_url: str = setting(
        "MIRO_AUTHORIZE_URL", "Where `miro-sync login` sends you to approve the app (the sandbox serves its own at MIRO_API_URL/oauth/authorize).",
        OAUTH_APP, default=MIRO_AUTHORIZE_URL, check=Check.URL,
    )
    redis_url: str = setting(
        "REDIS_URL", "Redis holding the queue and the ledger (use AOF persistence). Put a password in the URL if it has one.",
        CONNECTIONS, default="redis://localhost:6379/0", check=Check.REDIS_URL, secret=True,
    )
    miro_api_url: str = setting("MIRO_API_URL", "Miro's API; the sandbox sets this to itself.", CONNECTIONS, default="https://api.miro.com", check=Check.URL)
    upload_mode: UploadMode = setting("UPLOAD_MODE", _UPLOAD_MODE_DOC, ROUTE, default=UploadMode.AUTO)
    ngrok_api_url: str | None = setting(
        "NGROK_API_URL", "The ngrok agent API (Docker: http://ngrok:4040). Leave empty when not using a tunnel.", ROUTE, default=None, check=Check.URL,
    )
    public_base_url: str | None = setting(
        "PUBLIC_BASE_URL", "Public base URL of the image server, if you expose it yourself (skips the agent API).", ROUTE, default=None, check=Check.URL,
    )
    url_signing_secret: str | None = setting(
        "URL_SIGNING_SECRET", "Secret for the image server's signed URLs (needed for the url route): openssl rand -hex 32", ROUTE, default=None, secret=True,
    )
    url_ttl_seconds: int = setting("URL_TTL_SECONDS", "How long a signed URL stays valid, seconds (30..86400).", ROUTE, default=600, minimum=30, maximum=86400)
    probe_interval: int = setting(
        "PROBE_INTERVAL", "Seconds between tunnel probes (a probe fetches a test image through the public URL as a browser would).", ROUTE,
        default=300, minimum=5,
    )
    verify_grace: float = setting(
        "VERIFY_GRACE", "Seconds Miro has to fetch a URL before the item is checked, and repaired by upload if it was not fetched.\n"
        "No worker waits meanwhile: the check runs later, in every worker's verifier thread.", ROUTE, default=5.0, minimum=0.0,
    )
    circuit_failures: int = setting("CIRCUIT_FAILURES", _CIRCUIT_DOC, ROUTE, default=3, minimum=1, maximum=1000)
    circuit_window: float = setting("CIRCUIT_WINDOW", "", ROUTE, default=600.0, minimum=1.0, maximum=86400.0)
    circuit_cooldown: float = setting("CIRCUIT_COOLDOWN", "", ROUTE, default=300.0, minimum=0.0, maximum=86400.0)
    max_upload_bytes: int = setting(
        "MAX_UPLOAD_BYTES", "Bytes above which an image is downscaled (or sent by URL in auto mode); at most Miro's 6 MB.", ROUTE,
        default=MIRO_MAX_UPLOAD_BYTES, minimum=1024, maximum=MIRO_MAX_UPLOAD_BYTES,
    )
    keep_gps: bool = setting("KEEP_GPS", _KEEP_GPS_DOC, ROUTE, default=False)  # False: a photo's GPS position never leaves the machine
    duplicates: DuplicatePolicy = setting(
        "DUPLICATES", "Same picture (same bytes) under another name: skip (default: it is already on the board) or upload.", ROUTE,
        default=DuplicatePolicy.SKIP,
    )
    on_delete: DeletePolicy = setting(
        "ON_DELETE", "A file deleted (or moved out of the folder): keep (default: its item stays; a board is a shared space and\n"
        "people draw around pictures) | remove (the item is deleted; 500 credits each, paced with the uploads) |\n"
        "archive (the item moves into the \"miro-sync archive\" frame, left of the grid).", MIRROR, default=DeletePolicy.KEEP,
    )
    max_delete: int = setting(
        "MAX_DELETE", "Mass-delete guard: more deletions than this waiting at once (a dropped mount, a wiped folder) are all held,\n"
        "with one log line, and the board is left alone until `miro-sync check --fix` or a higher limit. 50 is far\n"
        "above what a person deletes by hand in a few seconds and far below any folder worth syncing. 0 holds every deletion.",
        MIRROR, default=50, minimum=0, maximum=1_000_000,
    )
    delete_settle: float = setting(
        "DELETE_SETTLE_SECONDS", "Seconds a deletion waits before it is acted on: a file that reappears meanwhile, or the same bytes at a new\n"
        "path (a move that arrives as delete + create: polling, across mounts), is not a deletion.", MIRROR,
        default=10.0, minimum=0.0, maximum=3600.0,
    )
    folders: FolderMode = setting(
        "FOLDERS", "Subfolders: frames (default: one frame per subfolder, titled with its path, right of the root grid) | flat.", MIRROR,
        default=FolderMode.FRAMES,
    )
    watch_mode: WatchMode = setting("WATCH_MODE", _WATCH_MODE_DOC, WATCHING, default=WatchMode.AUTO)
    poll_interval: float = setting("POLL_INTERVAL", "Seconds between polls (polling mode).", WATCHING, default=1.0, minimum=0.1)
    settle_seconds: float = setting(
        "SETTLE_SECONDS", "Seconds a file must stay unchanged before it is queued when no close event tells us it is complete; and a\n"
        "folder that appears (a copy): its files are queued together, in name order, once it has been unchanged this long.", WATCHING,
        default=1.0, minimum=0.0,
    )
    rescan_interval: float = setting(
        "RESCAN_INTERVAL", "Seconds between full rescans of the folder (catches anything an event missed); 0 turns it off.", WATCHING,
        default=300.0, minimum=0.0,
    )
    scan_progress_seconds: float = setting(
        "SCAN_PROGRESS_SECONDS", "Seconds between two progress lines (files seen, queued, rate) while a scan of a large folder runs.", WATCHING,
        default=5.0, minimum=0.05, maximum=3600,
    )
    grid: Grid = field(default_factory=Grid)  # its GRID_* fields are declared in Grid
    queue_name: str = setting(
        "QUEUE_NAME", "The RQ queue the watcher fills and the workers empty (letters, digits, _ and -).", QUEUE,
        default="miro-sync", pattern=r"^[A-Za-z0-9_\-]+$", expected="letters, digits, _ and -",
    )
    job_timeout: int = setting("JOB_TIMEOUT", "Seconds one upload job may run.", QUEUE, default=180, minimum=10)
    retry_horizon: int = setting(
        "RETRY_HORIZON", "How long transient failures (429, 5xx, network) are retried before a job goes to the failed registry, seconds.", QUEUE,
        default=86400, minimum=0,
    )
    credits_per_minute: int = setting(
        "MIRO_CREDITS_PER_MINUTE", "Miro's credit budget per minute for this token (shared by all workers).", QUEUE, default=100_000, minimum=100,
    )
    rate_safety_margin: float = setting(
        "RATE_SAFETY_MARGIN", "The share of that budget we use (0.1..1).", QUEUE, default=0.95, minimum=0.1, maximum=1.0,
    )
    image_server_bind: str = setting(
        "IMAGE_SERVER_BIND", "host:port the image server listens on.", SERVER_AND_LOGS,
        default="127.0.0.1:8000", pattern=r"^[^\s:]*:\d{1,5}$", expected="host:port",
    )
    metrics_bind: str = setting(
        "METRICS_BIND", "Where `miro-sync metrics` serves Prometheus metrics (host:port). Keep it off the public side: the\n"
        "image server, the one service the tunnel reaches, never serves them. Compose: the metrics service.", SERVER_AND_LOGS,
        default="127.0.0.1:9108", pattern=r"^[^\s:]*:\d{1,5}$", expected="host:port",
    )
    log_format: LogFormat = setting("LOG_FORMAT", "auto (text on a terminal, JSON otherwise) | json | text", SERVER_AND_LOGS, default=LogFormat.AUTO)
    log_level: LogLevel = setting("LOG_LEVEL", "DEBUG | INFO | WARNING | ERROR", SERVER_AND_LOGS, default=LogLevel.INFO)
    other_secrets: tuple[str, ...] = field(default=(), repr=False)
    """The values of :data:`OTHER_SECRETS` (other services' credentials), from the environment or `.env`."""

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never reach a log line, an error message or a job's arguments."""
        found = [self.miro_access_token, self.url_signing_secret or "", self.miro_client_secret, self.miro_refresh_token,
                 self.miro_token_key or "", *self.other_secrets]
        password = urlsplit(self.redis_url).password
        if password:
            found.append(password)
        return tuple(s for s in found if len(s) >= 4)

    @property
    def circuit_limits(self) -> Limits:
        return Limits(self.circuit_failures, self.circuit_window, self.circuit_cooldown)

    @property
    def oauth(self) -> bool:
        """An app with expiring tokens: the token pair is refreshed and shared through Redis."""
        return bool(self.miro_client_id)

    @property
    def tunnel_configured(self) -> bool:
        return bool(self.public_base_url or self.ngrok_api_url)


COMPOSE_ONLY = (
    Var("WATCH_FOLDER_HOST", "The host folder mounted into the watcher, workers and image server as /data/inbox. Create it before `up`\n"
        "(else Docker creates it owned by root); ./inbox comes with the clone.", COMPOSE, example="./inbox"),
    Var("DASHBOARD_USERNAME", "rq-dashboard login (published on 127.0.0.1 only). Required by the compose file.", COMPOSE, example="admin"),
    Var("DASHBOARD_PASSWORD", "rq-dashboard password; required by the compose file.", COMPOSE, secret=True),
    Var("NGROK_AUTHTOKEN", "ngrok (only for UPLOAD_MODE=url, or auto with images over 6 MB): https://dashboard.ngrok.com", COMPOSE, secret=True),
    Var("NGROK_DOMAIN", "Optional: your ngrok domain (free plans have one fixed dev domain), e.g. https://name.ngrok-free.app", COMPOSE),
)
"""Variables the compose file reads, not `load_settings`: declared here so `.env.example` lists them."""

OTHER_SECRETS = (*(var.env for var in COMPOSE_ONLY if var.secret), "RQ_DASHBOARD_PASSWORD")
"""Variables no service here needs, but whose values are masked in every log line all the same."""

ENV_EXAMPLE_HEADER = """\
# miro-sync settings. Copy to .env and fill in the first block. Every service reads the
# process environment first, then this file (or the file named by MIRO_SYNC_ENV_FILE).
# A missing or malformed required value stops a service at once with one line naming it (exit 2).
# Generated from shared/settings.py by `python -m shared.settings > .env.example`: edit the declarations there."""

T = TypeVar("T")
N = TypeVar("N", int, float)

_BOARD_ID = re.compile(r"^[A-Za-z0-9_\-=.~]+$")
_BOOLEANS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def declared(cls: type[Any] = Settings) -> Iterator[tuple[dataclasses.Field[Any], Var, Any]]:
    """Every declared setting of ``cls`` and its nested groups: (field, declaration, type)."""
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        var = f.metadata.get("var")
        if var is not None:
            yield f, var, hints[f.name]


def all_vars() -> list[Var]:
    """Every variable `.env.example` lists, in its order."""
    found = [var for _, var, _ in declared(Settings)] + [var for _, var, _ in declared(Grid)] + list(COMPOSE_ONLY)
    return sorted(found, key=lambda var: SECTIONS.index(var.section))


def env_example() -> str:
    """The text of `.env.example`, written from the declarations."""
    lines = [ENV_EXAMPLE_HEADER]
    for section in SECTIONS:
        lines += ["", f"# --- {section.title} ".ljust(100, "-")]
        lines += [f"# {line}" for line in section.intro.splitlines()]
        for var in all_vars():
            if var.section is section:
                lines += [f"# {line}" for line in var.doc.splitlines()]
                lines.append(f"{var.env}={var.example_value()}")
    return "\n".join(lines) + "\n"


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
) -> Settings:
    """Read and validate every setting; raise :class:`SettingsError` on the first problem.

    Missing required settings come first, all of them in one error, in their order of declaration:
    every command with nothing set says the same thing (what it needs of the same list).
    """
    env = load_env(environ)
    needs = _implied(needs)
    r = _Reader(env, needs)
    _check_oauth_client(env)
    check_required(env, needs)
    values = {f.name: r.read(var, kind) for f, var, kind in declared(Settings)}
    if values["miro_token_key"] is not None:
        _check_fernet_key(values["miro_token_key"])
    grid = Grid(**{f.name: r.read(var, kind) for f, var, kind in declared(Grid)})

    board = values["miro_board_id"]
    if board and not _BOARD_ID.match(board):
        raise SettingsError("MIRO_BOARD_ID", f"is not a board id ({board!r}); copy the part after /app/board/ in the board's address, e.g. uXjVOabc123=")
    mode, secret = values["upload_mode"], values["url_signing_secret"]
    uses_urls = mode is UploadMode.URL or (mode is UploadMode.AUTO and (values["ngrok_api_url"] or values["public_base_url"]))
    if secret is not None and len(secret) < 16:
        raise SettingsError("URL_SIGNING_SECRET", "is too short; use at least 16 random characters (e.g. `openssl rand -hex 32`)")
    if secret is None and Need.MIRO in needs and uses_urls:
        raise SettingsError("URL_SIGNING_SECRET", "is not set; the url upload route signs image URLs with it (e.g. `openssl rand -hex 32`)")
    if mode is UploadMode.URL and Need.MIRO in needs and not (values["ngrok_api_url"] or values["public_base_url"]):
        raise SettingsError("UPLOAD_MODE", "is 'url' but neither NGROK_API_URL nor PUBLIC_BASE_URL is set; set one, or use UPLOAD_MODE=auto")
    if 2 * grid.padding >= min(grid.cell_width, grid.cell_height):
        raise SettingsError("GRID_PADDING", f"({grid.padding}) leaves no room in a {grid.cell_width}x{grid.cell_height} cell")
    if Need.FOLDER in needs:
        values["watch_folder"] = _check_folder(values["watch_folder"])
    return Settings(**values, grid=grid, other_secrets=tuple(env.get(name, "") for name in OTHER_SECRETS))


def _implied(needs: Iterable[Need]) -> set[Need]:
    needs = set(needs)
    return needs | {Need.BOARD} if Need.MIRO in needs else needs


def check_required(env: Mapping[str, str], needs: Iterable[Need]) -> None:
    """Raise one :class:`SettingsError` naming every required setting these needs leave unset, in declaration order."""
    needs = _implied(needs)
    token_needed = Need.MIRO in needs and not env.get("MIRO_CLIENT_ID", "").strip()  # an OAuth app's token lives in Redis
    missing = [var for _, var, _ in declared(Settings)
               if (var.needed_by in needs or (token_needed and var.env == "MIRO_ACCESS_TOKEN")) and not env.get(var.env, "").strip()]
    if len(missing) == 1:
        raise SettingsError(missing[0].env, f"is not set; expected {missing[0].expected}")
    if missing:
        names = ", ".join(var.env for var in missing[:-1]) + " and " + missing[-1].env
        raise SettingsError(names, "are not set (.env.example lists them); expected " + "; ".join(f"{var.env}: {var.expected}" for var in missing))


def _check_oauth_client(env: Mapping[str, str]) -> None:
    """MIRO_CLIENT_ID, MIRO_CLIENT_SECRET, MIRO_REFRESH_TOKEN: all or nothing of the first two."""
    client_id = env.get("MIRO_CLIENT_ID", "").strip()
    secret = env.get("MIRO_CLIENT_SECRET", "").strip()
    refresh = env.get("MIRO_REFRESH_TOKEN", "").strip()
    if client_id and not secret:
        raise SettingsError("MIRO_CLIENT_SECRET", "is not set; MIRO_CLIENT_ID is, and refreshing tokens needs both (the app's settings page)")
    if secret and not client_id:
        raise SettingsError("MIRO_CLIENT_ID", "is not set; MIRO_CLIENT_SECRET is, and refreshing tokens needs both (the app's settings page)")
    if refresh and not client_id:
        raise SettingsError("MIRO_CLIENT_ID", "is not set; MIRO_REFRESH_TOKEN can only be used with MIRO_CLIENT_ID and MIRO_CLIENT_SECRET")
    for name, value in (("MIRO_CLIENT_SECRET", secret), ("MIRO_REFRESH_TOKEN", refresh)):
        if any(c.isspace() for c in value):
            raise SettingsError(name, "contains white space; paste the value alone")  # never echoed: a secret


def _check_fernet_key(key: str) -> None:
    from cryptography.fernet import Fernet  # only where a key is set

    try:
        Fernet(key.encode())
    except (ValueError, TypeError):
        # Never echo the value: it is a secret.
        raise SettingsError("MIRO_TOKEN_KEY", "is not a Fernet key (32 bytes, url-safe base64); make one with "
                                              "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`") from None


def _check_folder(folder: Path) -> Path:
    """The watch folder, which must exist: never created here, so a typo cannot become an empty folder
    whose emptiness reads as every picture deleted (only `miro-sync up --folder` makes its own)."""
    try:
        folder.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise SettingsError("WATCH_FOLDER", f"({folder.absolute()}) does not exist; create it, or fix WATCH_FOLDER "
                                            "(a typo? a drive not mounted?)") from None
    except OSError as exc:
        raise SettingsError("WATCH_FOLDER", f"({folder.absolute()}) cannot be read by this user (uid {os.getuid()}): {exc.strerror}") from None
    if not folder.is_dir():
        raise SettingsError("WATCH_FOLDER", f"({folder}) is not a folder")
    if not os.access(folder, os.R_OK | os.X_OK):
        raise SettingsError("WATCH_FOLDER", f"({folder}) is not readable by this user (uid {os.getuid()})")
    return folder.resolve()


class _Reader:
    """Typed access to the merged environment; each failure names its variable."""

    def __init__(self, env: Mapping[str, str], needs: set[Need]) -> None:
        self.env = env
        self.needs = needs

    def read(self, var: Var, kind: Any) -> Any:
        """The value of ``var`` as its field's type ``kind`` says."""
        if isinstance(kind, types.UnionType):  # "X | None": the None is the default's business
            kind = next(arg for arg in get_args(kind) if arg is not type(None))
        if var.needed_by in self.needs:
            raw = self.required(var.env, var.expected)
            return Path(raw).expanduser() if kind is Path else raw
        if kind is Path:
            path = self.env.get(var.env)
            return var.default if path is None else Path(path).expanduser()
        if kind is bool:
            return self.boolean(var.env, var.default)
        if kind is int:
            return self.integer(var.env, var.default, var.minimum, var.maximum)
        if kind is float:
            return self.number(var.env, var.default, var.minimum, var.maximum)
        if isinstance(kind, type) and issubclass(kind, Enum):
            return self.enum(var.env, kind, var.default)
        if var.check is Check.URL:
            return self.url(var.env, var.default)
        if var.check is Check.REDIS_URL:
            return self.redis_url(var.env, var.default)
        if var.pattern is not None:
            return self.pattern(var.env, var.pattern, var.default, var.expected)
        return self.env.get(var.env, var.default)

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
        except (ValueError, TypeError, KeyError):
            raise SettingsError(name, f"is {raw!r}; expected {expected}") from None

    def integer(self, name: str, default: int, minimum: float | None = None, maximum: float | None = None) -> int:
        return self._bounded(name, self._parse(name, default, int, "a whole number"), minimum, maximum)

    def number(self, name: str, default: float, minimum: float | None = None, maximum: float | None = None) -> float:
        return self._bounded(name, self._parse(name, default, float, "a number"), minimum, maximum)

    def _bounded(self, name: str, value: N, minimum: float | None, maximum: float | None) -> N:
        if minimum is not None and value < minimum:
            raise SettingsError(name, f"is {value}; expected at least {minimum}")
        if maximum is not None and value > maximum:
            raise SettingsError(name, f"is {value}; expected at most {maximum}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        return self._parse(name, default, lambda v: _BOOLEANS[v.lower()], "true or false (also 1/0, yes/no, on/off)")

    def enum(self, name: str, kind: type[Enum], default: Enum) -> Enum:
        by_value = {str(m.value).lower(): m for m in kind}  # LOG_LEVEL=info and UPLOAD_MODE=URL both work
        return self._parse(name, default, lambda v: by_value[v.lower()], "one of " + "|".join(str(m.value) for m in kind))

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


if __name__ == "__main__":
    sys.stdout.write(env_example())
