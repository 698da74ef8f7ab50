"""Hostile hand edits, a full disk, loose permissions and replayed refresh tokens (issue 15:
items 4, 12, 13 and 15), each replayed against the live server and real files.

* A hand edit that is valid JSON of the wrong shape is refused like broken JSON: the last
  good copy is kept, the file named in the log and kept as `.rejected-*`; no other
  record, device or list is affected, and a later good edit is picked up without restart.
* A refusal for a full disk (507) is logged with the file it could not write.
* Data folders are created 0700 and the upstream cache file is 0600.
* Of concurrent rotations with one refresh token, exactly one gets a new login.
"""
import glob
import json
import os
import shutil
import stat
import threading
import time

import pytest
import requests

from helpers import admin_headers, bearer, opt_in, pair, raw_pair, restore_identity  # noqa: F401
from ovos_backend_client.database import SkillSettingsModel
from ovos_skill_personal_backend.backend import store as store_module
from ovos_skill_personal_backend.backend.services import fetch
from ovos_skill_personal_backend.backend.store import Store

pytestmark = pytest.mark.usefixtures("restore_identity")

SKILL = "skill-news.openvoiceos"


@pytest.fixture
def logged(monkeypatch) -> list:
    """What the backend logs at ERROR (OVOS's LOG does not reach caplog)."""
    lines = []
    monkeypatch.setattr(store_module.LOG, "error", lambda message, *args: lines.append(str(message)))
    return lines


def _device_file(store: Store, uuid: str) -> str:
    return os.path.join(store.path, "devices", f"{uuid}.json")


def _edit_json(path: str, change) -> None:
    """A hand edit in place, as an editor may do (same inode, new content)."""
    with open(path) as f:
        data = json.load(f)
    data = change(data)
    with open(path, "w") as f:
        json.dump(data, f)


def _device_get(url: str, login: dict) -> requests.Response:
    return requests.get(f"{url}/v1/device/{login['uuid']}", headers=bearer(login["accessToken"]),
                        timeout=10)


def _rejected(path: str) -> list:
    return glob.glob(path + ".rejected-*")


# item 4: valid JSON of the wrong shape ---------------------------------------------------

def test_a_device_file_of_the_wrong_shape_is_refused_and_poisons_nothing(live_server, store, logged):
    first, second = raw_pair(live_server.url), raw_pair(live_server.url)
    path = _device_file(store, first["uuid"])
    _edit_json(path, lambda record: {**record, "tokens": ["x"]})

    # every device goes on working; the edited one on its last good copy
    assert _device_get(live_server.url, second).status_code == 200
    assert _device_get(live_server.url, first).status_code == 200
    assert raw_pair(live_server.url)["accessToken"]  # a new device can pair too
    assert len(_rejected(path)) == 1
    assert any(path in line and "tokens" in line for line in logged), logged
    with open(path) as f:
        assert isinstance(json.load(f)["tokens"], dict)  # the good copy is back on disk

    # a good edit afterwards is picked up without a restart
    _edit_json(path, lambda record: {**record, "name": "Fixed by hand"})
    answer = _device_get(live_server.url, first)
    assert answer.status_code == 200 and answer.json()["name"] == "Fixed by hand"
    assert _device_get(live_server.url, second).status_code == 200


def test_a_new_device_file_of_the_wrong_shape_is_set_aside(live_server, store, logged):
    """A file with no good copy to fall back on is moved aside while serving, not served."""
    login = raw_pair(live_server.url)
    stranger = os.path.join(store.path, "devices", "stranger.json")
    with open(stranger, "w") as f:
        json.dump({"uuid": "stranger", "tokens": "not an object"}, f)
    assert _device_get(live_server.url, login).status_code == 200
    assert not os.path.exists(stranger) and len(_rejected(stranger)) == 1
    assert any(stranger in line for line in logged), logged


def test_a_shared_skill_entry_turned_into_a_string_breaks_no_device(live_server, store, tmp_path, logged):
    devices = [pair(live_server.url, tmp_path / name / "identity2.json") for name in ("a", "b")]
    meta = {"sections": [{"name": "Options", "fields": [{"name": "city", "type": "text", "value": ""}]}]}
    for device in devices:  # both have the skill; its settings are shared
        device.skill_settings_upload([SkillSettingsModel(SKILL, {"city": "Lisbon"}, meta=meta)])
    path = store.shared_skills.path
    _edit_json(path, lambda skills: {**skills, SKILL: "oops"})

    for device in devices:
        downloaded = device.skill_settings_download()
        assert [model.skill_settings for model in downloaded] == [{"city": "Lisbon"}]
    assert len(_rejected(path)) == 1
    assert any(path in line and SKILL in line for line in logged), logged

    _edit_json(path, lambda skills: {**skills, SKILL: {**skills[SKILL], "settings": {"city": "Porto"}}})
    for device in devices:
        assert [m.skill_settings for m in device.skill_settings_download()] == [{"city": "Porto"}]


def test_a_metrics_line_of_the_wrong_shape_is_skipped_and_named(live_server, store, logged):
    login = raw_pair(live_server.url)
    opt_in(live_server.url, login["uuid"])
    requests.post(f"{live_server.url}/v1/device/{login['uuid']}/metric/boot", json={"time": 0.1},
                  headers=bearer(login["accessToken"]), timeout=10).raise_for_status()
    with open(store.metrics.path, "a") as f:
        f.write("[1, 2]\n")
        f.write('{"metric_type": "x", "timestamp": "yesterday"}\n')

    answer = requests.get(f"{live_server.url}/v1/admin/metrics/list", headers=admin_headers(),
                          params={"since": 0}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert [m["meta"] for m in answer.json()] == [{"time": 0.1}]
    assert any(f"{store.metrics.path}:2" in line for line in logged), logged
    assert any(f"{store.metrics.path}:3" in line and "timestamp" in line for line in logged), logged


def test_removing_the_devices_folder_while_serving(live_server, store):
    login = raw_pair(live_server.url)
    shutil.rmtree(os.path.join(store.path, "devices"))
    answer = _device_get(live_server.url, login)
    assert answer.status_code == 401, answer.text  # its record went with the folder
    assert os.path.isdir(os.path.join(store.path, "devices"))  # recreated
    assert _device_get(live_server.url, raw_pair(live_server.url)).status_code == 200


# item 12: a 507 names its file in the log ----------------------------------------------

def test_a_refused_write_is_logged_with_its_file(live_server, store, logged):
    login = raw_pair(live_server.url)
    path = _device_file(store, login["uuid"])
    if os.path.exists(path + ".bak"):
        os.unlink(path + ".bak")
    os.mkdir(path + ".bak")  # the file system refuses the backup link: the write cannot happen
    answer = requests.put(f"{live_server.url}/v1/admin/{login['uuid']}/device",
                          json={"name": "Kitchen"}, headers=admin_headers(), timeout=10)
    assert answer.status_code == 507, answer.text
    assert any(f"cannot write {path}:" in line for line in logged), logged  # the full path


# item 13: permissions ----------------------------------------------------------------------

def _mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_data_folders_are_private(tmp_path):
    store = Store(str(tmp_path / "data"))
    folders = [store.path, store.devices.folder, store.pairings.folder, store.utterances.folder,
               store.folder("recordings", "ww")]
    assert {folder: _mode(folder) for folder in folders} == {folder: 0o700 for folder in folders}


def test_the_upstream_cache_file_is_private(config, store):
    umask = os.umask(0o022)
    try:
        fetch.cached_session(config, store).close()
        path = os.path.join(store.path, "cache", "upstream.sqlite")
        assert _mode(path) == 0o600 and _mode(os.path.dirname(path)) == 0o700
        os.chmod(path, 0o644)  # as an older version left it
        fetch.cached_session(config, store).close()
        assert _mode(path) == 0o600
        assert os.umask(0o022) == 0o022  # the process umask (shared with ovos-core) untouched
    finally:
        os.umask(umask)


# item 15: concurrent refresh replays ---------------------------------------------------------

@pytest.fixture
def slow_disk(monkeypatch):
    """Writes take 30 ms, as on an SD card: a window wide enough to replay a token in."""
    write = store_module.write_atomic

    def slow(path: str, data: bytes) -> None:
        time.sleep(0.03)
        write(path, data)

    monkeypatch.setattr(store_module, "write_atomic", slow)


def _refresh_at_once(url: str, token: str, callers: int) -> list:
    """`callers` GET /auth/token with `token`, released together; their responses."""
    start, answers = threading.Barrier(callers), []

    def call():
        start.wait()
        answers.append(requests.get(f"{url}/v1/auth/token", headers=bearer(token), timeout=30))

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_a_refresh_token_replayed_concurrently_rotates_once(live_server, slow_disk):
    login = raw_pair(live_server.url)
    for _ in range(3):
        answers = _refresh_at_once(live_server.url, login["refreshToken"], 12)
        winners = [a.json() for a in answers if a.status_code == 200]
        assert sorted(a.status_code for a in answers) == [200] + [401] * 11
        login = winners[0]
        assert _device_get(live_server.url, login).status_code == 200  # the one new login works
