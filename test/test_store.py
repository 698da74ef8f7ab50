"""The store keeps data through crashes, hand edits and hostile ids, and never empties silently."""
import glob
import json
import os
import subprocess
import sys

import pytest
import requests

from helpers import admin_headers, bearer, data_files, raw_pair
from ovos_skill_personal_backend.backend.errors import BadRequest, StorageError
from ovos_skill_personal_backend.backend import store as store_module
from ovos_skill_personal_backend.backend.store import AppendLog, Store

GARBAGE = b'{"uuid": "abc", "name": "half a reco'


def _write(path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _device_file(store: Store, key: str) -> str:
    return os.path.join(store.path, "devices", key + ".json")


def _leftovers(folder):
    return [p for p in data_files(folder) if ".tmp" in os.path.basename(p)]


def test_writes_are_atomic_and_leave_no_temp_files(tmp_path):
    store = Store(str(tmp_path))
    for n in range(20):
        store.devices.put("dev", {"n": n})
        store.shared_skills.put(f"skill-{n % 3}", {"n": n})
        store.metrics.append({"n": n})
    store.metrics.rewrite(store.metrics.read()[:5])
    assert _leftovers(tmp_path) == []
    with open(_device_file(store, "dev")) as f:
        assert json.load(f) == {"n": 19}
    # the previous version is kept beside the file
    with open(_device_file(store, "dev") + ".bak") as f:
        assert json.load(f) == {"n": 18}
    assert [r["n"] for r in AppendLog(store.metrics.path).read()] == [0, 1, 2, 3, 4]


def test_temp_files_of_killed_writers_are_removed_at_startup(tmp_path):
    store = Store(str(tmp_path))
    store.devices.put("dev", {"n": 1})
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = [os.path.join(store.devices.folder, f"dev.json.tmp-{dead}-1"),
             os.path.join(str(tmp_path), f"skill_settings.json.tmp-{dead}-2")]
    live = os.path.join(store.devices.folder, f"dev.json.tmp-{os.getpid()}-3")  # a write in progress
    for path in stale + [live]:
        _write(path, b'{"n": 2')
    reopened = Store(str(tmp_path))
    assert _leftovers(tmp_path) == [live]
    assert reopened.devices.get("dev") == {"n": 1}


def test_a_write_that_cannot_happen_changes_nothing(tmp_path):
    store = Store(str(tmp_path))
    store.shared_skills.put("a", {"v": 1})
    os.unlink(store.shared_skills.journal)
    os.mkdir(store.shared_skills.journal)  # the journal cannot be appended to
    with pytest.raises(StorageError):
        store.shared_skills.put("a", {"v": 2})
    assert store.shared_skills.get("a") == {"v": 1}
    assert _leftovers(tmp_path) == []


def test_a_fold_that_cannot_happen_keeps_the_journal(tmp_path):
    store = Store(str(tmp_path))
    store.shared_skills.put("a", {"v": 1})
    Store(str(tmp_path)).shared_skills.put("b", {"v": 2})  # opening folds the journal in
    os.mkdir(store.shared_skills.path + ".bak")  # the backup link cannot be made
    reopened = Store(str(tmp_path))  # opens all the same, on the file and its journal
    assert reopened.shared_skills.all() == {"a": {"v": 1}, "b": {"v": 2}}
    with open(store.shared_skills.path) as f:
        assert json.load(f) == {"a": {"v": 1}}
    assert _leftovers(tmp_path) == []
    os.rmdir(store.shared_skills.path + ".bak")
    Store(str(tmp_path))
    with open(store.shared_skills.path) as f:
        assert json.load(f) == {"a": {"v": 1}, "b": {"v": 2}}


def test_collection_writes_go_to_the_journal_and_are_folded_in(tmp_path, monkeypatch):
    """A write to a one-file collection costs one journal line, whatever the file holds."""
    monkeypatch.setattr(store_module, "FOLD_BYTES", 0)
    store = Store(str(tmp_path))
    for n in range(50):
        store.shared_skills.put(f"skill-{n}", {"n": n, "pad": "x" * 200})
    folded = os.path.getsize(store.shared_skills.path)
    # folded in each time the journal outgrew the file: never much more in it than there
    assert folded > 20 * 200 and os.path.getsize(store.shared_skills.journal) <= folded + 300
    store.shared_skills.put("skill-0", {"n": -1})
    store.shared_skills.delete("skill-1")
    reopened = Store(str(tmp_path))
    assert reopened.shared_skills.get("skill-0") == {"n": -1}
    assert reopened.shared_skills.get("skill-1") is None
    assert len(reopened.shared_skills.keys()) == 49
    assert os.path.getsize(store.shared_skills.journal) == 0  # opening folds it in
    with open(store.shared_skills.path) as f:
        assert json.load(f)["skill-0"] == {"n": -1}


# corrupt files ------------------------------------------------------------------------

def test_corrupt_device_file_at_startup_is_restored_from_bak(tmp_path):
    store = Store(str(tmp_path))
    store.devices.put("dev", {"name": "first"})
    store.devices.put("dev", {"name": "second"})
    _write(_device_file(store, "dev"), GARBAGE)

    reopened = Store(str(tmp_path))
    assert reopened.devices.get("dev") == {"name": "first"}  # the .bak version
    with open(_device_file(store, "dev")) as f:
        assert json.load(f) == {"name": "first"}
    rejected = glob.glob(_device_file(store, "dev") + ".rejected-*")
    assert len(rejected) == 1 and open(rejected[0], "rb").read() == GARBAGE


def test_corrupt_collection_file_at_startup_is_restored_from_bak(tmp_path):
    store = Store(str(tmp_path))
    store.shared_skills.put("skill-a", {"v": 1})
    Store(str(tmp_path)).shared_skills.put("skill-b", {"v": 2})  # each open folds the journal in
    Store(str(tmp_path))
    _write(store.shared_skills.path, b"[]")  # valid JSON, but not an object

    reopened = Store(str(tmp_path))
    assert reopened.shared_skills.all() == {"skill-a": {"v": 1}}
    assert len(glob.glob(store.shared_skills.path + ".rejected-*")) == 1


def test_corrupt_file_without_a_good_copy_stops_the_store(tmp_path):
    """Never start on an empty store when data exists but cannot be read."""
    store = Store(str(tmp_path))
    store.devices.put("dev", {"name": "only version"})  # no .bak yet
    _write(_device_file(store, "dev"), GARBAGE)
    with pytest.raises(StorageError, match="corrupt"):
        Store(str(tmp_path))
    assert open(_device_file(store, "dev"), "rb").read() == GARBAGE  # left for the owner


@pytest.mark.parametrize("collection", ["devices", "shared_skills"])
def test_corrupt_hand_edit_while_running_keeps_the_last_good_copy(tmp_path, collection):
    store = Store(str(tmp_path))
    records = getattr(store, collection)
    records.put("key", {"name": "v1"})
    records.put("key", {"name": "v2"})
    path = _device_file(store, "key") if collection == "devices" else store.shared_skills.path
    _write(path, GARBAGE + b" and more")

    assert records.get("key") == {"name": "v2"}  # the last good copy, not the older .bak
    assert records.keys() == ["key"]
    with open(path) as f:
        restored = json.load(f)
    assert restored == ({"name": "v2"} if collection == "devices" else {"key": {"name": "v2"}})
    assert len(glob.glob(path + ".rejected-*")) == 1
    records.put("key", {"name": "v3"})  # and writing goes on
    assert getattr(Store(str(tmp_path)), collection).get("key") == {"name": "v3"}


def test_valid_hand_edit_is_picked_up_without_restart(live_server, store):
    login = raw_pair(live_server.url)
    url = f"{live_server.url}/v1/device/{login['uuid']}"
    assert requests.get(url, headers=bearer(login["accessToken"]), timeout=10).json()["name"].startswith("Device-")

    path = _device_file(store, login["uuid"])
    with open(path) as f:
        record = json.load(f)
    record["name"] = "Edited by hand"
    with open(path, "w") as f:  # in place, as an editor may do
        json.dump(record, f)
    assert requests.get(url, headers=bearer(login["accessToken"]), timeout=10).json()["name"] == "Edited by hand"


def test_hand_added_and_removed_device_files_are_noticed(tmp_path):
    store = Store(str(tmp_path))
    store.devices.put("a", {"uuid": "a"})
    _write(_device_file(store, "b"), b'{"uuid": "b"}')
    assert sorted(store.devices.keys()) == ["a", "b"]
    os.unlink(_device_file(store, "a"))
    assert store.devices.keys() == ["b"] and store.devices.get("a") is None


# append log ---------------------------------------------------------------------------

def test_append_log_repairs_a_partial_last_line(tmp_path):
    path = str(tmp_path / "metrics.jsonl")
    _write(path, b'{"n": 1}\n{"n": 2}\n{"n": 3, "half')
    log = AppendLog(path)
    assert [r["n"] for r in log.read()] == [1, 2]
    assert open(path, "rb").read().endswith(b"}\n")
    log.append({"n": 4})
    assert [r["n"] for r in AppendLog(path).read()] == [1, 2, 4]


def test_append_log_skips_a_bad_line_in_the_middle(tmp_path):
    path = str(tmp_path / "metrics.jsonl")
    _write(path, b'{"n": 1}\nnot json\n{"n": 3}\n')
    assert [r["n"] for r in AppendLog(path).read()] == [1, 3]


# hostile ids ----------------------------------------------------------------------------

BAD_IDS = ["../escape", "..", "a/b", "/etc/passwd", "dev\x00ice", "a" * 129, "", "é"]


@pytest.mark.parametrize("key", BAD_IDS)
def test_path_traversal_ids_are_refused(tmp_path, key):
    store = Store(str(tmp_path / "data"))
    assert store.devices.get(key) is None
    with pytest.raises(BadRequest):
        store.devices.put(key, {"x": 1})
    assert os.listdir(tmp_path) == ["data"]
    # nothing written: the only files are the empty journals a new store starts with
    assert all(p.endswith(".journal") and not os.path.getsize(p) for p in data_files(tmp_path))


@pytest.mark.parametrize("key", ["..%2F..%2Fescape", "%2E%2E", "a%2Fb"])
def test_path_traversal_over_http(live_server, store, key):
    login = raw_pair(live_server.url)
    before = set(data_files(store.path))
    for method, path, body in (("GET", f"admin/devices/{key}", None),
                               ("PUT", f"admin/{key}/device", {"name": "x"}),
                               ("POST", "admin/devices", {"uuid": key.replace("%2F", "/"), "name": "x"})):
        response = requests.request(method, f"{live_server.url}/v1/{path}", headers=admin_headers(),
                                    json=body, timeout=10)
        assert response.status_code in (400, 404), (method, path, response.status_code)
        assert response.json()["error"]
    response = requests.get(f"{live_server.url}/v1/device/{key}", headers=bearer(login["accessToken"]), timeout=10)
    assert response.status_code in (401, 404)
    assert set(data_files(store.path)) == before
    assert not any("escape" in p for p in data_files(os.path.dirname(store.path)))
