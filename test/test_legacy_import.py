"""Moving in (#18): data made by the REAL old backends (ovos-local-backend 0.1.5 and 0.2.0a23,
each in its own venv on loopback, see legacy_backends.py) is imported with the
`ovos-personal-backend import-legacy` command, then the identity2.json files the real
client wrote while pairing with the old server work against this backend, unchanged."""
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from conftest import make_config
from helpers import bearer, device_backend, read_identity, restore_identity, serve  # noqa: F401
from legacy_backends import LISBON, make_household
from ovos_skill_personal_backend.backend.store import Store

pytestmark = pytest.mark.usefixtures("restore_identity")
COMMAND = str(Path(sys.executable).parent / "ovos-personal-backend")


@pytest.fixture(scope="module")
def old_015(tmp_path_factory):
    return make_household("0.1.5", tmp_path_factory.mktemp("old015") / "home")


@pytest.fixture(scope="module")
def old_02(tmp_path_factory):
    return make_household("0.2.0a23", tmp_path_factory.mktemp("old02") / "home")


def import_legacy(tmp_path, *args: str) -> subprocess.CompletedProcess:
    """The real command, into tmp_path/data with the config tmp_path/backend.conf."""
    return subprocess.run([COMMAND, "import-legacy", "--config", str(tmp_path / "backend.conf"),
                           "--data-dir", str(tmp_path / "data"), *args],
                          capture_output=True, text=True, timeout=120)


def imported(tmp_path, *args: str) -> str:
    done = import_legacy(tmp_path, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def fingerprint(folder: Path) -> dict:
    """Every file under `folder` with its content's hash (the data folder's lock file only
    names the last process that held it)."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file() and path.name != ".lock"}


def served(tmp_path):
    return serve(make_config(tmp_path / "data"))


def test_a_015_household_moves_in_and_every_device_keeps_its_identity(old_015, tmp_path):
    before = fingerprint(old_015.home)
    report = imported(tmp_path, "--home", str(old_015.home))
    assert "imported: 2 devices, 1 shared skill settings, 1 device skill settings, 3 metrics, " \
           "1 recordings, 1 OAuth apps, 1 OAuth tokens" in report
    assert fingerprint(old_015.home) == before  # the old files are only read
    first, second = old_015.uuids()
    with served(tmp_path) as server:
        kitchen = device_backend(server.url, old_015.identities[0])
        assert kitchen.device_get()["name"] == "Legacy device 1"
        assert kitchen.device_get()["description"] == "kitchen"
        settings = kitchen.device_get_settings()
        assert (settings["systemUnit"], settings["timeFormat"], settings["dateFormat"]) == \
            ("imperial", "half", "MDY")
        assert kitchen.device_get_location()["city"]["name"] == LISBON["city"]["name"]
        # the values were kept inside the old meta fields, typed; shared by device 1, and
        # served under the gid the device sent
        weather = kitchen.device_get_skill_settings()["@|skill-weather.openvoiceos"]
        assert weather == {"units": "imperial", "api_key": "owm-key-dev1", "show_details": True,
                           "refresh_minutes": 10}
        assert kitchen.device_get_oauth_token("spotify")["access_token"] == "oauth-access-abc123"
        # device 2 had isolated skills: its own copy came along
        isolated = device_backend(server.url, old_015.identities[1])
        assert isolated.device_get()["name"] == "Legacy device 2"
        assert isolated.device_get_skill_settings()[f"@{second}|skill-weather.openvoiceos"] == weather
    store = Store(str(tmp_path / "data"))
    assert [m["meta"]["id"] for m in store.metrics.read()] == ["stt-0", "stt-1", "stt-2"]
    (recording,) = store.wakewords.all().values()
    assert (recording["uuid"], recording["transcription"], recording["audio_tag"]) == \
        (first, "hey_jarvis", "untagged")
    config = json.loads((tmp_path / "backend.conf").read_text())
    assert config["microservices"]["owm_key"] == "owm-from-old-backend"
    assert "stt" not in config  # the old default sent speech to a public server
    assert second in store.devices.keys()


def test_mycroft_core_refreshes_with_the_old_token(old_015, tmp_path):
    """mycroft-core's identity looks expired at once: its first call is /auth/token with the
    old token as refresh token; it saves the new pair, and the old token stops working."""
    imported(tmp_path, "--home", str(old_015.home))
    uuid, old = old_015.uuids()[0], old_015.token(0)
    with served(tmp_path) as server:
        refreshed = requests.get(f"{server.url}/v1/auth/token", headers=bearer(old), timeout=10)
        assert refreshed.status_code == 200, refreshed.text
        login = refreshed.json()
        assert login["uuid"] == uuid and login["accessToken"] != old
        device = requests.get(f"{server.url}/v1/device/{uuid}", timeout=10,
                              headers=bearer(login["accessToken"]))
        assert device.json()["name"] == "Legacy device 1"
        again = requests.get(f"{server.url}/v1/device/{uuid}", headers=bearer(old), timeout=10)
        assert again.status_code == 401


def test_a_second_import_brings_nothing_twice_and_keeps_the_owners_config(old_015, tmp_path):
    (tmp_path / "backend.conf").write_text(json.dumps({"microservices": {"owm_key": "owners-key"}}))
    imported(tmp_path, "--home", str(old_015.home))
    data = fingerprint(tmp_path / "data")
    report = imported(tmp_path, "--home", str(old_015.home))
    assert "imported: nothing new" in report
    assert "already here (left as they are): 2 devices" in report
    assert "config microservices.owm_key: the owner set it here already; kept" in report
    assert {k: v for k, v in fingerprint(tmp_path / "data").items() if not k.endswith(".bak")} == \
        {k: v for k, v in data.items() if not k.endswith(".bak")}
    config = json.loads((tmp_path / "backend.conf").read_text())
    assert config["microservices"]["owm_key"] == "owners-key"


def test_a_dry_run_writes_nothing(old_015, tmp_path):
    report = imported(tmp_path, "--home", str(old_015.home), "--dry-run")
    assert "would import: 2 devices" in report
    assert not (tmp_path / "backend.conf").exists()
    assert not any(Store(str(tmp_path / "data")).devices.keys())


def test_a_damaged_old_file_is_named_and_nothing_is_imported(old_015, tmp_path):
    home = tmp_path / "copy"
    shutil.copytree(old_015.home, home)
    metrics = home / ".local/share/json_database/ovos_metrics.jsondb"
    metrics.write_bytes(metrics.read_bytes()[:-40])  # cut short, as by a full disk
    done = import_legacy(tmp_path, "--home", str(home))
    assert done.returncode == 2
    assert str(metrics) in done.stderr and "nothing was imported" in done.stderr
    assert not any(Store(str(tmp_path / "data")).devices.keys())
    assert not (tmp_path / "backend.conf").exists()


def test_a_docker_install_is_found_from_its_volumes_and_copied_folders(tmp_path_factory, tmp_path):
    """The old README's compose file mounts the config folder and a data folder (data_path,
    with the recordings); the devices and the indexes stay in the container and are taken
    out with `docker cp`. Here all four sit elsewhere than the paths the old files name."""
    root = tmp_path_factory.mktemp("container") / "root"
    household = make_household("0.1.5", root, data_path=root / ".local/share/ovos_backend")
    host = tmp_path / "host"
    moves = {"config": ".config/json_database", "data": ".local/share/ovos_backend",
             "cache": ".cache/json_database", "index": ".local/share/json_database"}
    for target, source in moves.items():
        shutil.move(str(root / source), str(host / target))
    shutil.rmtree(root)  # the container is gone: the stored absolute paths lead nowhere
    report = imported(tmp_path, "--home", str(tmp_path / "empty-home"),
                      *[arg for name in moves for arg in ("--from", str(host / name))])
    assert "imported: 2 devices" in report and "1 recordings" in report
    with served(tmp_path) as server:
        for path in household.identities:
            assert device_backend(server.url, path).device_get()["uuid"] == read_identity(path)["uuid"]


def test_a_02_household_moves_in(old_02, tmp_path):
    before = fingerprint(old_02.home)
    report = imported(tmp_path, "--home", str(old_02.home))
    assert "imported: 2 devices, 3 metrics, 1 recordings, 1 OAuth apps, 1 OAuth tokens" in report
    assert fingerprint(old_02.home) == before
    with served(tmp_path) as server:
        kitchen = device_backend(server.url, old_02.identities[0])
        info = kitchen.device_get()
        assert (info["name"], info["description"]) == ("Legacy device 1", "kitchen")
        assert kitchen.device_get_settings()["systemUnit"] == "imperial"
        assert kitchen.device_get_location()["timezone"]["code"] == "Europe/Lisbon"
        # 0.2 kept the token under the device that asked for it
        assert kitchen.device_get_oauth_token("spotify")["refresh_token"] == "oauth-refresh-def456"
        assert device_backend(server.url, old_02.identities[1]).device_get()["name"] == \
            "Legacy device 2"
        refreshed = requests.get(f"{server.url}/v1/auth/token", timeout=10,
                                 headers=bearer(old_02.token(1)))
        assert refreshed.status_code == 200 and refreshed.json()["uuid"] == old_02.uuids()[1]
    (recording,) = Store(str(tmp_path / "data")).wakewords.all().values()
    assert recording["transcription"] == "hey jarvis"


def test_nothing_found_is_said(tmp_path):
    done = import_legacy(tmp_path, "--home", str(tmp_path))
    assert done.returncode == 2 and "no old ovos-local-backend installation found" in done.stderr
    assert not any(Store(str(tmp_path / "data")).devices.keys())
