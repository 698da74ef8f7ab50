"""The `ovos-personal-backend` command and config loading: clear refusals, clean exits.

Runs that must really serve (URL banner, signals) use a child process; refusals that
happen before serving call `cli.main()` in-process (same code, no 2 s interpreter start).
"""
import json
import re
import signal
import socket

import pytest
import requests

from conftest import ADMIN_KEY, free_port
from helpers import ServerProcess, bearer, raw_pair
from ovos_skill_personal_backend.backend import cli
from ovos_skill_personal_backend.backend import config as config_module
from ovos_skill_personal_backend.backend.errors import StorageError
from ovos_skill_personal_backend.backend.store import Store


def _config_file(tmp_path, content) -> str:
    path = tmp_path / "backend.conf"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def _serve_args(tmp_path, config: str, port: int = None):
    args = ["--data-dir", str(tmp_path / "data"), "--config", config]
    return args + (["--host", "127.0.0.1", "--port", str(port)] if port else [])


def _main_refusing(argv) -> int:
    """cli.main() for a run that must stop before serving. A run that would serve blocks
    until a signal, so that case fails here first instead of hanging the suite."""
    args = cli.parse_args(argv)
    with pytest.raises((config_module.ConfigError, StorageError)):
        Store(config_module.load(args.config, cli.overrides_from(args))["data_path"])
    return cli.main(argv)


# a running server ------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_prints_its_url_serves_and_exits_cleanly_on_signals(tmp_path, sig):
    port = free_port()
    config = _config_file(tmp_path, "")  # an empty file: all defaults
    server = ServerProcess(*_serve_args(tmp_path, config, port)).start()
    try:
        url = f"http://127.0.0.1:{port}"
        assert f"serving on {url} " in server.banner and f"api {url}/v1" in server.banner
        assert "pairing: auto" in server.banner  # loopback: no confirmation needed
        answer = requests.get(url + "/", timeout=10)
        assert answer.status_code == 200 and answer.json()["status"] == "ok"
        server.signal(sig)
        assert server.wait() == 0
    finally:
        server.stop()
    assert "ovos-personal-backend stopped" in server.text
    assert "Traceback" not in server.text


def test_cli_applies_its_config_file(tmp_path):
    """Admin key and body limit from the file; 413 is JSON from the standalone server too."""
    config = _config_file(tmp_path, {"server": {"admin_key": ADMIN_KEY, "max_body_mb": 1,
                                                "pairing": "confirm"}})
    server = ServerProcess(*_serve_args(tmp_path, config, free_port())).start()
    try:
        url = server.banner.split("serving on ")[1].split()[0]
        assert "pairing: confirm" in server.banner
        answer = requests.get(f"{url}/v1/admin/pairings", headers=bearer(ADMIN_KEY), timeout=10)
        assert answer.status_code == 200 and answer.json() == []
        code = requests.get(f"{url}/v1/device/code", params={"state": "0123456789ab"}, timeout=10).json()
        requests.post(f"{url}/v1/admin/pairings/{code['code']}/approve", headers=bearer(ADMIN_KEY), timeout=10)
        login = requests.post(f"{url}/v1/device/activate", json={"state": code["state"], "token": code["token"]},
                              timeout=10).json()
        answer = requests.put(f"{url}/v1/device/{login['uuid']}/skill", data=b"x" * 1_500_000,
                              headers=bearer(login["accessToken"]), timeout=30)
        assert answer.status_code == 413 and answer.json()["error"]
    finally:
        server.stop()


def test_cli_refusal_is_exit_2_in_a_real_process(tmp_path):
    config = _config_file(tmp_path, {"server": {"admin_key": "short"}})
    server = ServerProcess(*_serve_args(tmp_path, config)).start(wait_for=None)
    try:
        assert server.wait() == 2
    finally:
        server.stop()
    assert "server.admin_key" in server.text and "Traceback" not in server.text


# refusals (in-process) ---------------------------------------------------------------

@pytest.mark.parametrize("content, named", [
    ('{"server": {"port": 6712,', "cannot read config file"),
    ("[1, 2]", "must hold a JSON object"),
    ({"server": {"port": "6712"}}, "server.port"),
    ({"server": {"port": 70000}}, "server.port"),
    ({"server": {"admin_key": "too-short"}}, "server.admin_key"),
    ({"server": {"pairing": "yes"}}, "server.pairing"),
    ({"server": {"max_body_mb": 0}}, "server.max_body_mb"),
    ({"server": {"version": "v1/x"}}, "server.version"),
    ({"system_unit": "kelvin"}, "system_unit"),
    ({"listener": {"record_utterances": "yes"}}, "listener.record_utterances"),
    ({"location": "Lisbon"}, "location"),
], ids=["invalid-json", "not-object", "port-type", "port-range", "short-admin-key", "pairing-value",
        "body-limit", "version", "unit", "bool-type", "location"])
def test_bad_config_exits_2_naming_the_key(tmp_path, capsys, content, named):
    config = _config_file(tmp_path, content)
    assert _main_refusing(_serve_args(tmp_path, config)) == 2
    err = capsys.readouterr().err
    assert err.startswith("ovos-personal-backend: ") and named in err, err
    if named == "cannot read config file":
        assert config in err


def test_busy_port_exits_2(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ServerProcess(*_serve_args(tmp_path, _config_file(tmp_path, "{}"), port)).start(wait_for=None)
        try:
            assert server.wait() == 2
        finally:
            server.stop()
    assert f"cannot listen on 127.0.0.1:{port}" in server.text


def test_unwritable_data_dir_exits_2(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    args = ["--config", _config_file(tmp_path, "{}"), "--data-dir", str(blocker / "data")]
    assert _main_refusing(args) == 2
    assert "data folder" in capsys.readouterr().err


# config loading -----------------------------------------------------------------------

def test_unknown_keys_are_warned_not_fatal(tmp_path, capfd, caplog):
    """ovos_utils' LOG writes to stdout, or to `logging` once something reconfigured it: read both."""
    path = _config_file(tmp_path, {"server": {"colour": "red", "database": "sqlite://"}, "extra": 1,
                                   "stt": {"ovos-stt-plugin-x": {"any": "thing"}}})
    config = config_module.load(path)
    logged = "".join(capfd.readouterr()) + caplog.text
    warned = set(re.findall(r"WARNING.*unknown config key ignored: (\S+)", logged))
    assert warned == {"extra", "server.colour"}  # legacy and plugin keys pass silently
    assert config["server"]["port"] == 6712


def test_empty_or_missing_file_means_defaults(tmp_path):
    empty = _config_file(tmp_path, "  \n")
    assert config_module.load(empty) == config_module.load(str(tmp_path / "missing.conf"))


def test_command_line_overrides_the_file(tmp_path):
    path = _config_file(tmp_path, {"server": {"port": 7000, "host": "127.0.0.1"}, "data_path": "/nowhere"})
    args = cli.parse_args(["--port", "7100", "--host", "0.0.0.0", "--config", path, "--data-dir", str(tmp_path)])
    config = config_module.load(args.config, cli.overrides_from(args))
    assert (config["server"]["port"], config["server"]["host"], config["data_path"]) == (7100, "0.0.0.0", str(tmp_path))
    assert config["server"]["pairing"] == "confirm"  # reachable from the LAN: the owner approves


def test_secrets_are_masked(tmp_path):
    path = _config_file(tmp_path, {"server": {"admin_key": ADMIN_KEY},
                                   "microservices": {"owm_key": "owm-secret", "email": {"smtp": {"password": "pw"}}}})
    shown = json.dumps(config_module.masked(config_module.load(path)))
    for secret in (ADMIN_KEY, "owm-secret", '"pw"'):
        assert secret not in shown


def test_a_served_device_survives_a_restart(tmp_path):
    """The standalone server keeps pairings in --data-dir across a clean restart."""
    config = _config_file(tmp_path, "{}")
    port = free_port()
    server = ServerProcess(*_serve_args(tmp_path, config, port)).start()
    try:
        login = raw_pair(f"http://127.0.0.1:{port}")
    finally:
        server.stop()
    server = ServerProcess(*_serve_args(tmp_path, config, port)).start()
    try:
        answer = requests.get(f"http://127.0.0.1:{port}/v1/device/{login['uuid']}",
                              headers=bearer(login["accessToken"]), timeout=10)
        assert answer.status_code == 200
    finally:
        server.stop()
