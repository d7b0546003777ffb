"""Is the Miro token accepted for the board? One answer for `doctor`, the worker and the watcher.

A wrong token or board is *fatal*: services refuse to start (one line, exit 2) instead of
retrying in a loop. Miro being unreachable or busy is not: services start and retry later.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from .miro import MiroApiError, MiroAuthError, MiroClient, MiroError, MiroNotFound
from .settings import Settings
from .tokens import MISSING_CODE, REFUSED_CODE, UNREADABLE_CODE, token_source


@dataclass(frozen=True)
class Verdict:
    ok: bool
    fatal: bool  # a person must change a setting; retrying cannot help
    detail: str
    login: bool = False  # no usable stored token pair: `miro-sync login` fixes it, no restart needed


def explain_auth(exc: MiroAuthError) -> str:
    if exc.code in (REFUSED_CODE, MISSING_CODE, UNREADABLE_CODE):
        return f"{exc.message}. Fix: run `miro-sync login` (jobs wait and resume by themselves once a new token pair is stored)"
    if exc.code == "invalid_client":
        return f"{exc.message} (Miro answered {exc.status} invalid_client)"
    if exc.status == 403:
        return (f"Miro answered 403 {exc.code}: the token lacks boards:read/boards:write, or the board is not shared "
                "with its user; reinstall the app with both scopes")
    return (f"Miro answered {exc.status} {exc.code}: MIRO_ACCESS_TOKEN is wrong, revoked or expired; "
            "copy a fresh token from the app's settings")


def check_board(settings: Settings, client: MiroClient | None = None) -> Verdict:
    try:
        client = client or MiroClient(settings.miro_api_url, token_source(settings), timeout=10)
        board = client.get_board(settings.miro_board_id)
    except MiroAuthError as exc:
        if exc.code in (REFUSED_CODE, MISSING_CODE, UNREADABLE_CODE):
            return Verdict(False, False, explain_auth(exc), login=True)
        return Verdict(False, True, explain_auth(exc))
    except MiroNotFound:
        return Verdict(False, True, f"board {settings.miro_board_id!r} not found (404): copy MIRO_BOARD_ID from the "
                                    "board's address (/app/board/<id>/) and share the board with the token's user")
    except MiroApiError as exc:
        fatal = exc.status is not None and exc.status < 500 and exc.status != 429
        return Verdict(False, fatal, f"Miro answered {exc.status} {exc.code}: {exc.message}")
    except MiroError as exc:
        return Verdict(False, False, f"cannot reach {settings.miro_api_url}: {exc}")
    except redis.RedisError as exc:  # the shared token pair of an app with expiring tokens lives there
        return Verdict(False, False, f"cannot read the stored Miro token from Redis ({type(exc).__name__})")
    return Verdict(True, False, f"token accepted; board {board.get('name') or settings.miro_board_id!r}")
