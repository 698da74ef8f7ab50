"""A new owner following the README: the device snippets pair a real client as written,
and a server started for the LAN without an admin key can still be administered."""
import copy
import html
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import requests
from ovos_config.config import Configuration
from ovos_config.locations import find_user_config

from browser import Browser
from conftest import SANDBOX, free_port
from helpers import pairing_manager, restore_identity  # noqa: F401 (restore_identity: a fixture)
from server_process import ServerProcess
from ovos_skill_personal_backend.backend import cli
from ovos_skill_personal_backend.backend import config as config_module

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "README.md")
EXAMPLE_URL = "http://192.168.1.10:6712"


def readme_snippet() -> str:
    """The first JSON block of the README's "Pointing a device at the backend"."""
    with open(README, encoding="utf-8") as f:
        text = f.read()
    section = text.split("## Pointing a device at the backend", 1)[1]
    return re.search(r"```json\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def device_config():
    """Write the device's user mycroft.conf; put things back afterwards."""
    path = find_user_config()
    # ovos-config 0.4 merges the files into its default layer in memory, and a reload merges
    # each file into what its layer holds: keep a copy of the default layer to put back
    default = copy.deepcopy(dict(Configuration.default))

    def write(conf: dict) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(conf, f)
        Configuration.reload()

    yield write
    if os.path.exists(path):
        os.remove(path)
    for cached in Configuration.xdg_configs:
        cached.clear()
    Configuration.default.clear()
    Configuration.default.update(default)
    Configuration.reload()


def pairs_with_this_config(tmp_path) -> bool:
    """The client's own pairing manager, configured only by mycroft.conf, as on a device."""
    with pairing_manager(tmp_path / "identity2.json") as (_, shown, paired):
        return shown.wait(10) and paired.wait(20)


@pytest.mark.usefixtures("restore_identity")
def test_the_readme_snippet_pairs_a_real_client(live_server, device_config, tmp_path):
    device_config(json.loads(readme_snippet().replace(EXAMPLE_URL, live_server.url)))
    assert pairs_with_this_config(tmp_path)


@pytest.mark.usefixtures("restore_identity")
def test_the_dashboard_snippet_pairs_a_real_client(live_server, app, config, device_config, tmp_path):
    config["server"]["url"] = live_server.url  # what the owner sets when behind another name
    browser = Browser(app.test_client())
    assert browser.login().status_code == 302
    page = browser.get("/admin/").get_data(as_text=True)
    snippet = re.search(r'<pre class="snippet" id="device-snippet">(.*?)</pre>', page, re.S).group(1)
    device_config(json.loads(html.unescape(snippet)))
    assert pairs_with_this_config(tmp_path)


def test_the_api_url_the_command_prints_answers(live_server):
    answer = requests.get(f"{live_server.url}/v1", timeout=10)
    assert answer.status_code == 200 and answer.json()["status"] == "ok"
    assert answer.json()["admin"] == "/admin/"


# a server for the LAN --------------------------------------------------------------

def test_admin_key_from_the_option_or_the_environment(monkeypatch):
    assert cli.overrides_from(cli.parse_args(["--admin-key", "k" * 20]))["server"]["admin_key"] == "k" * 20
    monkeypatch.setenv(cli.ADMIN_KEY_ENV, "e" * 20)
    assert cli.overrides_from(cli.parse_args([]))["server"]["admin_key"] == "e" * 20


def test_a_network_server_without_a_key_makes_and_keeps_one(tmp_path):
    path = tmp_path / "backend.conf"
    path.write_text(json.dumps({"lang": "en-us"}))
    config = config_module.load(str(path), {"server": {"host": "0.0.0.0"}})
    cli.ensure_admin_key(config, str(path))
    stored = json.loads(path.read_text())
    key = stored["server"]["admin_key"]
    assert key == config["server"]["admin_key"] and len(key) >= config_module.MIN_ADMIN_KEY_LENGTH
    assert stored["lang"] == "en-us"  # the rest of the file is kept
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    again = config_module.load(str(path), {"server": {"host": "0.0.0.0"}})
    cli.ensure_admin_key(again, str(path))
    assert again["server"]["admin_key"] == key  # made once, then kept
    loopback = config_module.load(str(tmp_path / "none.conf"))
    cli.ensure_admin_key(loopback, str(tmp_path / "none.conf"))
    assert not loopback["server"]["admin_key"] and not (tmp_path / "none.conf").exists()


def test_the_admin_key_command_shows_and_rotates(tmp_path, capsys):
    path = str(tmp_path / "backend.conf")
    assert cli.main(["admin-key", "--config", path]) == 1
    assert "admin-key --rotate" in capsys.readouterr().err
    assert cli.main(["--config", path, "admin-key", "--rotate"]) == 0
    made = capsys.readouterr().out.strip()
    assert cli.main(["admin-key", "--config", path]) == 0
    assert capsys.readouterr().out.strip() == made
    assert cli.main(["admin-key", "--rotate", "--config", path]) == 0
    assert capsys.readouterr().out.strip() not in ("", made)


def _netns_available() -> bool:
    return bool(shutil.which("unshare") and shutil.which("nsenter") and shutil.which("ip")) and \
        subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _netns_available(), reason="needs unshare/nsenter (network namespaces)")
def test_a_lan_start_as_written_can_be_administered(tmp_path):
    """`ovos-personal-backend --host 0.0.0.0`, in a network namespace of its own (only its
    loopback exists there): it makes a key, says where to log in, and the key works."""
    config = tmp_path / "backend.conf"
    port = free_port()
    launcher = ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
    server = ServerProcess("--host", "0.0.0.0", "--port", str(port), "--config", str(config),
                           "--data-dir", str(tmp_path / "data"), launcher=launcher,
                           env={"HOME": os.path.join(SANDBOX, "home")}).start()
    try:
        assert "made an admin key" in server.text and "admin-key" in server.text
        admin_line = [line for line in server.output if line.startswith("admin page: ")][0]
        assert admin_line.strip().endswith(f":{port}/admin/")
        key = json.loads(config.read_text())["server"]["admin_key"]
        probe = (
            "import json, sys, urllib.request\n"
            f"base = 'http://127.0.0.1:{port}'\n"
            "api = urllib.request.urlopen(base + '/v1').status\n"
            "req = urllib.request.Request(base + '/v1/admin/pairings',\n"
            "                             headers={'Authorization': 'Bearer ' + sys.argv[1]})\n"
            "print(api, urllib.request.urlopen(req).status)\n")
        inside = subprocess.run(["nsenter", "-t", str(server.proc.pid), "-U", "-n",
                                 "--preserve-credentials", sys.executable, "-c", probe, key],
                                capture_output=True, text=True, timeout=30)
        assert inside.stdout.split() == ["200", "200"], inside.stderr
    finally:
        server.stop()
