"""When devices were last seen and last synced (kept in memory, stored at most every 10
minutes), and the store's change listeners, on the real store and the Flask app."""
import json
import os
import threading

import pytest

from conftest import ADMIN_KEY
from ovos_skill_personal_backend.backend import devices, pairing, skill_settings
from ovos_skill_personal_backend.backend import store as store_module
from ovos_skill_personal_backend.backend.store import Presence, Store

SKILL = "skill-weather.openvoiceos"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(store):
    """The store's presence on a clock the test moves."""
    clock = Clock()
    store.presence = Presence(store.devices, clock=clock)
    return clock


@pytest.fixture
def login(store, config):
    return pairing.pair_directly(store, config)


def _get(client, login, path: str, token: str = ""):
    return client.get(f"/v1/device/{login['uuid']}{path}",
                      headers={"Authorization": f"Bearer {token or login['accessToken']}"})


def _file_version(store, uuid: str) -> tuple:
    """Changes whenever the device's file is written (it is replaced, never edited)."""
    st = os.stat(os.path.join(store.path, "devices", f"{uuid}.json"))
    return st.st_ino, st.st_mtime_ns


# presence -------------------------------------------------------------------------------------

def test_authenticated_requests_are_seen_and_settings_reads_are_syncs(client, store, login, clock):
    uuid = login["uuid"]
    assert store.presence.get(uuid) == {"last_seen": None, "settings_synced_at": None}
    assert _get(client, login, "/setting", token="wrong-token").status_code == 401
    assert store.presence.get(uuid)["last_seen"] is None

    assert _get(client, login, "/setting").status_code == 200
    assert store.presence.get(uuid) == {"last_seen": clock.now, "settings_synced_at": None}

    for path in ("/skill/settings", "/skill/sync", "/skill"):
        clock.now += 1
        assert _get(client, login, path).status_code == 200
        assert store.presence.get(uuid) == {"last_seen": clock.now, "settings_synced_at": clock.now}
    clock.now += 1
    answer = client.patch(f"/v1/device/{uuid}/skill/sync", json={"skill_id": SKILL, "settings": {"a": 1}},
                          headers={"Authorization": f"Bearer {login['accessToken']}"})
    assert answer.status_code == 200 and store.presence.get(uuid)["settings_synced_at"] == clock.now


def test_times_reach_the_record_at_most_once_per_interval(client, store, login, clock, config):
    uuid = login["uuid"]
    _get(client, login, "/skill/settings")  # the first contact is stored at once
    first = clock.now
    stored = store.devices.get(uuid)
    assert stored["last_seen"] == first and "settings_synced_at" not in stored  # noted just after
    version = _file_version(store, uuid)

    for _ in range(50):  # a poll every 10 s, for 500 s: never a write
        clock.now += 10
        assert _get(client, login, "/skill/settings").status_code == 200
    assert _file_version(store, uuid) == version
    assert store.devices.get(uuid)["last_seen"] == first
    assert store.presence.get(uuid)["last_seen"] == clock.now  # memory is fresher

    clock.now = first + store.presence.interval
    _get(client, login, "/setting")
    assert _file_version(store, uuid) != version
    stored = store.devices.get(uuid)
    assert stored["last_seen"] == clock.now and stored["settings_synced_at"] == first + 500

    # a restart finds what was stored
    assert Store(config["data_path"]).presence.get(uuid) == {
        "last_seen": clock.now, "settings_synced_at": first + 500}


def test_admin_api_shows_last_contact_and_installed_skills(client, store, login, clock):
    uuid = login["uuid"]
    row = client.get(f"/v1/admin/devices/{uuid}", headers=ADMIN).json
    assert (row["last_seen"], row["settings_synced_at"], row["skills_installed"]) == (None, None, [])

    devices.record_manifest(store, uuid, {"skills": [
        {"name": SKILL, "skill_gid": f"@{uuid}|{SKILL}"}, {"name": "skill-timer.openvoiceos"}]})
    _get(client, login, "/skill/settings")
    clock.now += 30
    _get(client, login, "/location")
    row = client.get(f"/v1/admin/devices/{uuid}", headers=ADMIN).json
    assert row["last_seen"] == clock.now and row["settings_synced_at"] == clock.now - 30
    assert row["skills_installed"] == ["skill-timer.openvoiceos", SKILL]
    listed = client.get("/v1/admin/devices/list", headers=ADMIN).json
    assert [(r["uuid"], r["last_seen"]) for r in listed] == [(uuid, clock.now)]


# listeners ------------------------------------------------------------------------------------

@pytest.fixture
def heard(store):
    calls = []
    store.add_listener(lambda collection, key: calls.append((collection, key)))
    return calls


def test_listeners_hear_device_and_shared_skill_changes(store, config, heard):
    uuid = pairing.pair_directly(store, config)["uuid"]
    assert heard == [("devices", uuid)] * 2  # created, then given its tokens
    heard.clear()

    devices.update(store, uuid, {"name": "Kitchen"})
    devices.update(store, uuid, {"name": "Kitchen"})  # no change, no write: not told
    skill_settings.shared_put(store, SKILL, settings={"units": "metric"})
    skill_settings.shared_delete(store, SKILL)
    store.pairings.put("ABC347", {"code": "ABC347"})  # not a listened collection
    devices.delete(store, uuid)
    assert heard == [("devices", uuid), ("shared_skills", SKILL), ("shared_skills", SKILL),
                     ("devices", uuid)]


def test_a_failing_listener_is_logged_and_the_write_stands(store, config, heard, monkeypatch):
    logged = []
    monkeypatch.setattr(store_module.LOG, "exception", logged.append)

    def broken(collection, key):
        raise RuntimeError("listener bug")

    store.add_listener(broken)
    store.add_listener(lambda collection, key: heard.append(("after", key)))
    skill_settings.shared_put(store, SKILL, settings={"units": "metric"})
    assert store.shared_skills.get(SKILL)["settings"] == {"units": "metric"}
    assert heard == [("shared_skills", SKILL), ("after", SKILL)]
    assert len(logged) == 1 and SKILL in logged[0]

    store.remove_listener(broken)
    skill_settings.shared_put(store, SKILL, settings={"units": "imperial"})
    assert len(logged) == 1


def test_listeners_run_after_the_write_lock_is_released(store, config):
    uuid = pairing.pair_directly(store, config)["uuid"]
    other = threading.Thread(target=devices.update, args=(store, uuid, {"opt_in": True}))

    def write_from_another_thread(collection, key):
        if not other.is_alive() and other.ident is None:  # once
            other.start()
            other.join(5)  # under the lock, the other writer would wait for us: a deadlock

    store.add_listener(write_from_another_thread)
    devices.update(store, uuid, {"name": "Hall"})
    assert not other.is_alive() and store.devices.get(uuid)["opt_in"] is True


def test_listeners_hear_hand_edits(store, config, heard):
    uuid = pairing.pair_directly(store, config)["uuid"]
    skill_settings.shared_put(store, SKILL, settings={"units": "metric"})
    skill_settings.shared_put(store, "skill-timer.openvoiceos", settings={"sound": "bell"})
    heard.clear()

    def edit(path: str, change) -> None:
        with open(path) as f:
            data = json.load(f)
        change(data)
        with open(path + ".edit", "w") as f:
            json.dump(data, f)
        os.replace(path + ".edit", path)  # as an editor saves: a new file

    edit(os.path.join(store.path, "devices", f"{uuid}.json"), lambda d: d.update(name="Edited by hand"))
    assert store.devices.get(uuid)["name"] == "Edited by hand"
    edit(os.path.join(store.path, "skill_settings.json"), lambda d: d[SKILL]["settings"].update(units="x"))
    assert store.shared_skills.get(SKILL)["settings"]["units"] == "x"
    assert heard == [("devices", uuid), ("shared_skills", SKILL)]  # not the timer: unchanged

    os.unlink(os.path.join(store.path, "devices", f"{uuid}.json"))
    assert store.devices.keys() == [] and heard[-1] == ("devices", uuid)
