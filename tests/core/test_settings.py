import subprocess

import pytest

from shared.settings import Need, SettingsError, UploadMode, load_settings
from tests.fixtures.procs import MIRO_SYNC

BASE = {"MIRO_ACCESS_TOKEN": "token-123456", "MIRO_BOARD_ID": "uXjVOabc=", "MIRO_SYNC_ENV_FILE": "/nonexistent"}


@pytest.fixture
def env(tmp_path):
    (tmp_path / "inbox").mkdir()
    return dict(BASE, WATCH_FOLDER=str(tmp_path / "inbox"))


def test_defaults(env, tmp_path):
    s = load_settings(environ=env)
    assert s.watch_folder == (tmp_path / "inbox").resolve()
    assert s.upload_mode is UploadMode.AUTO
    assert s.redis_url == "redis://localhost:6379/0"
    assert s.max_upload_bytes == 6 * 1024 * 1024
    assert (s.circuit_failures, s.circuit_window, s.circuit_cooldown) == (3, 600.0, 300.0)
    assert (s.on_delete.value, s.max_delete, s.delete_settle, s.folders.value) == ("keep", 50, 10.0, "frames")


@pytest.mark.parametrize("missing", ["MIRO_ACCESS_TOKEN", "MIRO_BOARD_ID", "WATCH_FOLDER"])
def test_missing_required_names_the_variable(env, missing):
    env.pop(missing)
    with pytest.raises(SettingsError) as err:
        load_settings(environ=env)
    assert err.value.variable == missing and str(err.value).startswith(missing)


@pytest.mark.parametrize(
    "name,value",
    [("UPLOAD_MODE", "ftp"), ("GRID_COLUMNS", "zero"), ("GRID_COLUMNS", "0"), ("REDIS_URL", "http://x"),
     ("MIRO_API_URL", "api.miro.com"), ("URL_SIGNING_SECRET", "short"), ("WATCH_MODE", "magic"),
     ("MAX_UPLOAD_BYTES", str(7 * 1024 * 1024)), ("MIRO_BOARD_ID", "a b"), ("GRID_PADDING", "300"),
     ("CIRCUIT_FAILURES", "0"), ("CIRCUIT_FAILURES", "three"), ("CIRCUIT_WINDOW", "0.5"), ("CIRCUIT_COOLDOWN", "-1"),
     ("ON_DELETE", "erase"), ("MAX_DELETE", "-1"), ("MAX_DELETE", "many"), ("DELETE_SETTLE_SECONDS", "-2"),
     ("FOLDERS", "tree"), ("FRAME_COLUMNS", "0"), ("FRAME_ROWS", "101")],
)
def test_malformed_value_names_the_variable(env, name, value):
    env[name] = value
    with pytest.raises(SettingsError) as err:
        load_settings(environ=env)
    assert err.value.variable == name


def test_redis_password_never_in_error_or_repr(env):
    env["REDIS_URL"] = "redis://:hunter2-secret@localhost:6379/0"
    s = load_settings(environ=env)
    assert "hunter2-secret" not in repr(s) and "token-123456" not in repr(s)
    assert "hunter2-secret" in s.secrets
    env["REDIS_URL"] = "mysql://:hunter2-secret@bad"
    with pytest.raises(SettingsError) as err:
        load_settings(environ=env)
    assert "hunter2-secret" not in str(err.value)


def test_other_services_secrets_in_dotenv_are_masked_too(tmp_path):
    env_file = tmp_path / "my.env"
    env_file.write_text("\n".join(["NGROK_AUTHTOKEN=ngrok-secret-123", "DASHBOARD_PASSWORD=dash-secret-456", ""]))
    s = load_settings(needs=(), environ={"MIRO_SYNC_ENV_FILE": str(env_file), "RQ_DASHBOARD_PASSWORD": "rq-secret-789"})
    assert {"ngrok-secret-123", "dash-secret-456", "rq-secret-789"} <= set(s.secrets)
    assert "secret" not in repr(s)


def test_url_mode_needs_tunnel_and_secret(env):
    env["UPLOAD_MODE"] = "url"
    with pytest.raises(SettingsError) as err:
        load_settings(environ=env)
    assert err.value.variable == "URL_SIGNING_SECRET"
    env["URL_SIGNING_SECRET"] = "x" * 32
    with pytest.raises(SettingsError) as err:
        load_settings(environ=env)
    assert err.value.variable == "UPLOAD_MODE"
    env["NGROK_API_URL"] = "http://127.0.0.1:4040"
    assert load_settings(environ=env).tunnel_configured


def test_image_server_needs_no_miro_token(tmp_path):
    s = load_settings(needs={Need.FOLDER}, environ={"WATCH_FOLDER": str(tmp_path), "URL_SIGNING_SECRET": "s" * 20, "MIRO_SYNC_ENV_FILE": "/x"})
    assert s.miro_access_token == ""


def test_image_server_settings_load_without_a_secret_but_never_with_a_short_one(tmp_path):
    """The image server starts without URL_SIGNING_SECRET (it then serves nothing); a weak one stops it."""
    environ = {"WATCH_FOLDER": str(tmp_path), "MIRO_SYNC_ENV_FILE": "/x"}
    assert load_settings(needs={Need.FOLDER}, environ=environ).url_signing_secret is None
    with pytest.raises(SettingsError) as err:
        load_settings(needs={Need.FOLDER}, environ={**environ, "URL_SIGNING_SECRET": "short"})
    assert err.value.variable == "URL_SIGNING_SECRET"


def test_dotenv_file_is_read_and_environment_wins(tmp_path):
    env_file = tmp_path / "my.env"
    (tmp_path / "w").mkdir()
    lines = ["MIRO_ACCESS_TOKEN=from-file-123", "MIRO_BOARD_ID=fromfile", f"WATCH_FOLDER={tmp_path / 'w'}", "GRID_COLUMNS=4", ""]
    env_file.write_text("\n".join(lines))
    s = load_settings(environ={"MIRO_SYNC_ENV_FILE": str(env_file), "GRID_COLUMNS": "7"})
    assert s.miro_access_token == "from-file-123" and s.grid.columns == 7


# With nothing set, each command names what it needs of the one list, in the same order (the
# declarations'), all in one line: the watcher needs no token, the image server holds none.
@pytest.mark.parametrize("command,expected", [
    (["watch"], "MIRO_BOARD_ID and WATCH_FOLDER are not set"),
    (["worker"], "MIRO_ACCESS_TOKEN, MIRO_BOARD_ID and WATCH_FOLDER are not set"),
    (["serve"], "WATCH_FOLDER is not set"),  # it starts without URL_SIGNING_SECRET, serving nothing
    (["up"], "MIRO_ACCESS_TOKEN, MIRO_BOARD_ID and WATCH_FOLDER are not set"),
    (["check"], "MIRO_ACCESS_TOKEN, MIRO_BOARD_ID and WATCH_FOLDER are not set"),
    (["sync", "--dry-run"], "MIRO_BOARD_ID and WATCH_FOLDER are not set"),
    (["forget", "a.png"], "MIRO_BOARD_ID and WATCH_FOLDER are not set"),
    (["status"], "MIRO_BOARD_ID is not set"),
    (["metrics"], "MIRO_BOARD_ID is not set"),
])
def test_each_command_with_nothing_set_names_what_it_needs_in_one_line(command, expected, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "MIRO_SYNC_ENV_FILE": "/nonexistent", "HOME": str(tmp_path)}
    proc = subprocess.run(MIRO_SYNC + command, env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines[0].startswith(f"miro-sync {command[0]}: configuration error: {expected}"), lines[0]


def test_a_watch_folder_that_does_not_exist_is_an_error_and_is_not_created(env, tmp_path):
    typo = tmp_path / "inbx"
    with pytest.raises(SettingsError) as err:
        load_settings(environ=env | {"WATCH_FOLDER": str(typo)})
    assert err.value.variable == "WATCH_FOLDER" and str(typo) in str(err.value) and "does not exist" in str(err.value)
    assert not typo.exists()


# --- an app with expiring tokens -------------------------------------------------------------------
OAUTH = {"MIRO_CLIENT_ID": "3458764517517852417", "MIRO_CLIENT_SECRET": "client-secret-9876", "MIRO_REFRESH_TOKEN": "refresh-token-5432"}


def test_client_id_and_secret_replace_the_access_token(env):
    env.pop("MIRO_ACCESS_TOKEN")
    s = load_settings(environ=env | OAUTH)
    assert s.oauth and s.miro_client_id == OAUTH["MIRO_CLIENT_ID"] and s.miro_refresh_token == OAUTH["MIRO_REFRESH_TOKEN"]
    assert {"client-secret-9876", "refresh-token-5432"} <= set(s.secrets)
    assert "client-secret-9876" not in repr(s) and "refresh-token-5432" not in repr(s)
    # The refresh token is optional: `miro-sync login` can store the pair instead.
    env_without = env | {k: v for k, v in OAUTH.items() if k != "MIRO_REFRESH_TOKEN"}
    assert load_settings(environ=env_without).oauth
    assert not load_settings(environ=dict(BASE, WATCH_FOLDER=env["WATCH_FOLDER"])).oauth


@pytest.mark.parametrize("present,named", [
    (("MIRO_CLIENT_ID",), "MIRO_CLIENT_SECRET"),
    (("MIRO_CLIENT_SECRET",), "MIRO_CLIENT_ID"),
    (("MIRO_REFRESH_TOKEN",), "MIRO_CLIENT_ID"),
    (("MIRO_CLIENT_ID", "MIRO_REFRESH_TOKEN"), "MIRO_CLIENT_SECRET"),
])
def test_an_incomplete_client_names_the_missing_variable(env, present, named):
    env.pop("MIRO_ACCESS_TOKEN")
    with pytest.raises(SettingsError) as err:
        load_settings(environ=env | {k: OAUTH[k] for k in present})
    assert err.value.variable == named and str(err.value).startswith(f"{named} is not set")


def test_neither_token_nor_client_names_both_ways(env):
    env.pop("MIRO_ACCESS_TOKEN")
    with pytest.raises(SettingsError) as err:
        load_settings(environ=env)
    assert err.value.variable == "MIRO_ACCESS_TOKEN" and "MIRO_CLIENT_ID" in str(err.value)


@pytest.mark.parametrize("name,value", [("MIRO_CLIENT_ID", "12 34"), ("MIRO_TOKEN_KEY", "not-a-key-but-secret"),
                                        ("MIRO_REFRESH_TOKEN", "two words"), ("MIRO_AUTHORIZE_URL", "miro.com/oauth")])
def test_malformed_oauth_value_names_the_variable_and_never_echoes_a_secret(env, name, value):
    with pytest.raises(SettingsError) as err:
        load_settings(environ=env | OAUTH | {name: value})
    assert err.value.variable == name
    if name in ("MIRO_TOKEN_KEY", "MIRO_REFRESH_TOKEN"):
        assert value not in str(err.value)


def test_a_fernet_key_is_accepted_and_kept_secret(env):
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    s = load_settings(environ=env | OAUTH | {"MIRO_TOKEN_KEY": key})
    assert s.miro_token_key == key and key in s.secrets and key not in repr(s)


def test_the_worker_stops_with_one_line_for_a_client_without_secret(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "MIRO_SYNC_ENV_FILE": "/nonexistent", "HOME": str(tmp_path),
           "MIRO_CLIENT_ID": OAUTH["MIRO_CLIENT_ID"], "MIRO_BOARD_ID": "b=", "WATCH_FOLDER": str(tmp_path)}
    proc = subprocess.run(MIRO_SYNC + ["worker"], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "MIRO_CLIENT_SECRET is not set" in lines[0], proc.stderr
