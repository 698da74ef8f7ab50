"""The real ovos-backend-client 1.0.1, as a device uses it, against the real waitress server.

Client calls exercised here (all on the wire, none mocked):

* pairing: `PersonalBackend.device_get_code`, `device_activate`, `IdentityManager.save`,
  `ovos_backend_client.pairing.PairingManager.kickoff_pairing` (its real poll loop,
  with `poll_frequency` shortened), `pairing.check_remote_pairing`
* reads: `device_get`, `device_get_settings`, `device_get_location`,
  `device_get_subscription`, `device_get_subscriber_voice_url`
* reports: `device_update_version`, `device_upload_skills_data`,
  `DeviceApi.upload_skills_data`, `device_report_metric`, `metrics_upload`
* skill settings v1: `device_put_skill_settings_v1`, `device_get_skill_settings_v1`,
  `skill_settings_upload` / `skill_settings_download` (with `SkillSettingsModel`),
  `settings.RemoteSkillSettings.upload` / `.download` / `.upload_meta`
* skill settings v2: `device_upload_skill_metadata`, `device_get_skill_settings`
* tokens: raw `GET /v1/auth/token` with the refresh and with the access token (the
  client's own `refresh_token()` never sends a request: api-contract §2.3)
* admin, to set up and check what was stored: `admin_set_device_info`, `DatabaseApi.get_device`

Each test pairs its own device(s) against its own server and data folder.
"""
import os
import re
import threading
import time
import uuid as uuidlib

import pytest
import requests
from ovos_backend_client.api import DeviceApi
from ovos_backend_client.backends import BackendType
from ovos_backend_client.backends.personal import PersonalBackend
from ovos_backend_client.database import SkillSettingsModel
from ovos_backend_client.identity import IdentityManager, identity_lock
from ovos_backend_client.pairing import PairingManager, check_remote_pairing
from ovos_backend_client.settings import RemoteSkillSettings
from ovos_utils.fakebus import FakeBus

import conftest
from helpers import (DEFAULT_IDENTITY_FILE, admin_backend, bearer, database_api, identity_file, pair,
                     read_identity, restore_identity)  # noqa: F401 (restore_identity: a fixture)
from ovos_skill_personal_backend.backend import metrics, pairing

pytestmark = pytest.mark.usefixtures("restore_identity")

CODE = re.compile(r"^[ACEFHJKLMNPRTUVWXY3479]{6}$")


@pytest.fixture
def device(live_server, tmp_path) -> PersonalBackend:
    """A device paired through the real client code/activate flow."""
    return pair(live_server.url, tmp_path / "device" / "identity2.json")


def _meta(**fields) -> dict:
    """A settingsmeta with one section; `fields` maps name -> (type, value string)."""
    return {"sections": [{"name": "Options", "fields": [
        {"name": name, "type": kind, "label": name.title(), "value": value}
        for name, (kind, value) in fields.items()]}]}


# pairing ------------------------------------------------------------------------------

def test_client_paths_are_inside_the_sandbox():
    """The identity file (and its lock) must never be the developer's real one."""
    assert DEFAULT_IDENTITY_FILE == os.path.join(
        conftest.SANDBOX, "config", "mycroft", "identity", "identity2.json")
    assert IdentityManager.OLD_IDENTITY_FILE.startswith(conftest.SANDBOX)
    assert str(identity_lock.path).startswith(conftest.SANDBOX)


def test_pair_with_code_and_activate_writes_identity2(live_server):
    """The default flow: no identity file given, the client writes the XDG one."""
    if os.path.exists(DEFAULT_IDENTITY_FILE):  # (sandbox) left by another test: start unpaired
        os.unlink(DEFAULT_IDENTITY_FILE)
    IdentityManager.set_identity_file(DEFAULT_IDENTITY_FILE)
    backend = PersonalBackend(live_server.url)
    assert backend.uuid == "" and backend.headers["Authorization"] == "Bearer "

    state = str(uuidlib.uuid4())
    data = backend.device_get_code(state)
    assert CODE.match(data["code"]) and data["state"] == state and data["token"]
    before = time.time()
    login = backend.device_activate(state, data["token"], core_version="2.1.1",
                                    platform="ovos-docker", enclosure_version="1.0")
    IdentityManager.save(login)
    after = time.time()

    saved = read_identity(DEFAULT_IDENTITY_FILE)
    assert set(saved) == {"uuid", "access", "refresh", "expires_at"}
    assert saved["uuid"] == state == login["uuid"]
    assert saved["access"] == login["accessToken"] and saved["refresh"] == login["refreshToken"]
    assert saved["access"] != saved["refresh"]
    # the client computes expires_at = now + expiration (seconds); far in the future
    assert before + pairing.EXPIRATION <= saved["expires_at"] <= after + pairing.EXPIRATION
    assert backend.device_get()["uuid"] == state
    assert backend.device_get()["coreVersion"] == "2.1.1"
    assert check_remote_pairing(False, url=live_server.url, backend_type=BackendType.PERSONAL)


def test_pairing_manager_pairs_through_its_poll_loop(live_server, tmp_path):
    """ovos-backend-client's own PairingManager (FakeBus, 50 ms polls) pairs a device."""
    path = tmp_path / "identity2.json"
    bus, seen, paired = FakeBus(), {}, threading.Event()
    for topic in ("mycroft.pairing.code", "mycroft.paired"):
        bus.on(topic, lambda message, topic=topic: seen.setdefault(topic, message.data))
    manager = PairingManager(bus=bus, api_url=live_server.url, version="v1",
                             identity_file=str(path), backend_type=BackendType.PERSONAL,
                             success_callback=paired.set)
    manager.poll_frequency = 0.05
    try:
        manager.kickoff_pairing()
        assert paired.wait(20), "PairingManager never paired"
    finally:
        manager.shutdown()
    assert CODE.match(seen["mycroft.pairing.code"]["code"])
    identity = read_identity(path)
    assert identity["uuid"] == manager.uuid == seen["mycroft.paired"]["uuid"]
    assert PersonalBackend(live_server.url, identity_file=str(path)).device_get()["uuid"] == manager.uuid


# reads --------------------------------------------------------------------------------

def test_device_reads(device, live_server):
    uuid = device.uuid
    info = device.device_get()
    assert info == {"uuid": uuid, "name": f"Device-{uuid[:8]}", "description": "somewhere",
                    "coreVersion": "unknown", "enclosureVersion": "unknown",
                    "platform": "unknown", "user": {"uuid": uuid}}

    settings = device.device_get_settings()
    assert settings["uuid"] == uuid
    assert (settings["dateFormat"], settings["timeFormat"], settings["systemUnit"],
            settings["optIn"], settings["lang"]) == ("DMY", "full", "metric", False, "en-us")
    assert settings["listenerSetting"] == {} and settings["ttsSettings"] == {}

    location = device.device_get_location()
    assert location == settings["location"]
    assert location["timezone"]["code"] == "America/Chicago"
    assert location["timezone"]["offset"] == -21600000
    assert location["timezone"]["dstOffset"] == 3600000
    assert location["city"]["state"]["country"]["code"] == "US"

    assert device.device_get_subscription() == {"@type": "free"}
    # no premium voices: an empty link for every architecture
    assert device.device_get_subscriber_voice_url(arch="arm") == ""
    raw = requests.get(f"{live_server.url}/v1/device/{uuid}/voice", params={"arch": "x86_64"},
                       headers=bearer(device.access_token), timeout=10)
    assert raw.json() == {"link": "", "arch": "x86_64"}


def test_update_version_is_stored(device, live_server):
    response = device.device_update_version("2.1.1", "ovos-docker", "b42", "mk2-1.0")
    assert response.status_code == 200 and response.json()["success"] is True
    row = database_api(live_server.url).get_device(device.uuid)
    assert (row["core_version"], row["platform"], row["platform_build"],
            row["enclosure_version"]) == ("2.1.1", "ovos-docker", "b42", "mk2-1.0")
    assert device.device_get()["coreVersion"] == "2.1.1"


def test_upload_skills_data_is_stored(device, live_server, tmp_path, store):
    manifest = {"blacklist": ["skill-bad.someone"], "skills": [
        {"name": "skill-weather.openvoiceos", "origin": "non-msm", "beta": True,
         "status": "active", "installed": 0, "updated": 0, "installation": "installed",
         "skill_gid": "@|skill-weather.openvoiceos", "update": "dropped by the client"}]}
    # DeviceApi fills in the uuid (`@|` -> `@<uuid>|`) before calling the backend method
    api = DeviceApi(live_server.url, identity_file=str(tmp_path / "device" / "identity2.json"))
    response = api.upload_skills_data(manifest)
    assert response.status_code == 200
    stored = store.devices.get(device.uuid)["skills_manifest"]
    gid = f"@{device.uuid}|skill-weather.openvoiceos"
    assert list(stored["skills"]) == [gid] and "update" not in stored["skills"][gid]
    assert stored["blacklist"] == ["skill-bad.someone"]

    response = device.device_upload_skills_data({"skills": [], "blacklist": []})
    assert response.status_code == 200
    assert store.devices.get(device.uuid)["skills_manifest"]["skills"] == {}


def test_metrics_are_stored_only_when_opted_in(device, live_server, store):
    body = {"intent_type": "weather", "start_time": 1.5, "time": 0.2}
    answer = device.device_report_metric("intent_service", body).json()
    assert answer["success"] is True and answer["saved"] is False and answer["metric"] == body
    assert store.metrics.read() == []

    response = admin_backend(live_server.url).admin_set_device_info(device.uuid, {"opt_in": True})
    assert response.status_code == 200 and response.json()["opt_in"] is True
    answer = device.metrics_upload("intent_service", body).json()
    assert answer["saved"] is True
    found = metrics.search(store, uuid=device.uuid, metric_type="intent_service")
    assert [m["meta"] for m in found] == [body]


# skill settings v1 --------------------------------------------------------------------

def test_v1_put_and_get(device):
    gid = f"@{device.uuid}|skill-timer.openvoiceos"
    meta = _meta(sound=("checkbox", "True"), volume=("number", "7"), voice=("text", "calm"))
    meta["sections"][0]["fields"].append({"type": "label", "label": "Just a label"})
    assert device.device_put_skill_settings_v1(
        {"skill_gid": gid, "display_name": "Timer", "skillMetadata": meta}) is None

    entries = device.device_get_skill_settings_v1()
    assert len(entries) == 1
    entry = entries[0]
    # `identifier` is what RemoteSkillSettings.download indexes (api-contract §4.2)
    assert entry["skill_gid"] == entry["identifier"] == gid
    assert entry["display_name"] == "Timer"
    fields = {f.get("name"): f for f in entry["skillMetadata"]["sections"][0]["fields"]}
    assert fields["sound"]["value"] == "true"
    assert fields["volume"]["value"] == "7"
    assert fields["voice"]["value"] == "calm"
    assert "value" not in fields[None]  # the label
    assert device.device_get_skill_settings() == {gid: {"sound": True, "volume": 7, "voice": "calm"}}


def test_skill_settings_upload_and_download_with_models(device):
    meta = _meta(enabled=("checkbox", "false"), count=("number", "0"), city=("text", ""))
    model = SkillSettingsModel("skill-news.openvoiceos", {"enabled": True, "count": 3, "city": "Lisbon"},
                               meta=meta, display_name="News")
    assert model.remote_id == "@|skill-news.openvoiceos"  # no uuid: how the client sends it
    device.skill_settings_upload([model])

    downloaded = device.skill_settings_download()
    assert len(downloaded) == 1 and isinstance(downloaded[0], SkillSettingsModel)
    got = downloaded[0]
    assert got.skill_id == "skill-news.openvoiceos" and got.display_name == "News"
    assert got.skill_settings == {"enabled": True, "count": 3.0, "city": "Lisbon"}
    assert got.remote_id == "@|skill-news.openvoiceos"


def test_remote_skill_settings(device, live_server, tmp_path):
    """What ovos-workshop skills use. Its `download()` fails client-side once an entry
    matches (ovos-backend-client 1.0.1 reads `.skill_settings` off a RemoteSkillSettings,
    api-contract §8.2), so the round trip is checked on the wire."""
    skill_id = "skill-alarm.openvoiceos"
    with identity_file(tmp_path / "device" / "identity2.json"):
        # a bool gets an explicit checkbox: generate_meta() would emit it twice
        # (checkbox and number, since bool is an int), the last one winning
        remote = RemoteSkillSettings(skill_id, settings={"snooze": 9, "loud": True, "tone": "bell"},
                                     meta=_meta(loud=("checkbox", "false")), url=live_server.url)
        assert remote.identifier == f"@{device.uuid}|{skill_id}"
        remote.generate_meta()
        assert remote.serialize()["skillMetadata"]["sections"][0]["fields"][0]["value"] == "True"
        assert remote.upload() is None

        entries = requests.get(f"{live_server.url}/v1/device/{device.uuid}/skill",
                               headers=bearer(device.access_token), timeout=10).json()
        assert [e["identifier"] for e in entries] == [remote.identifier]
        values = {f["name"]: f["value"] for section in entries[0]["skillMetadata"]["sections"]
                  for f in section["fields"]}
        assert values == {"snooze": "9", "loud": "true", "tone": "bell"}
        assert device.device_get_skill_settings() == {
            remote.identifier: {"snooze": 9, "loud": True, "tone": "bell"}}

        with pytest.raises(AttributeError, match="skill_settings"):
            RemoteSkillSettings(skill_id, settings={"x": 1}, url=live_server.url).download()

        # upload_meta sends the bare meta (no skill_gid): refused with a JSON 400, nothing stored
        assert remote.upload_meta() is None
    answer = device.device_upload_skill_metadata(remote.meta)
    assert answer.status_code == 400 and "skill_gid" in answer.json()["error"]


# skill settings v2 --------------------------------------------------------------------

def test_v2_meta_upload_and_settings_keyed_by_full_gid(device):
    gid = f"@{device.uuid}|skill-date.openvoiceos"
    meta = {"skill_gid": gid, "display_name": "Date",
            "skillMetadata": _meta(format=("text", "long"), show=("checkbox", "false"))}
    response = device.device_upload_skill_metadata(meta)
    assert response.status_code == 200 and response.json()["success"] is True
    assert device.device_get_skill_settings() == {gid: {"format": "long", "show": False}}

    # a value set through v1 wins over the definition's default, also after a new meta upload
    device.device_put_skill_settings_v1({"skill_gid": gid, "skillMetadata": _meta(format=("text", "short"))})
    device.device_upload_skill_metadata(meta)
    assert device.device_get_skill_settings() == {gid: {"format": "short", "show": False}}


# tokens -------------------------------------------------------------------------------

@pytest.mark.parametrize("use", ["refreshToken", "accessToken"])
def test_refresh_rotates_tokens(live_server, tmp_path, use):
    """mycroft-core refreshes with the refresh token, old OVOS clients with the access token."""
    path = tmp_path / "identity2.json"
    backend = pair(live_server.url, path)
    old = {"accessToken": read_identity(path)["access"], "refreshToken": read_identity(path)["refresh"]}
    url = f"{live_server.url}/v1/auth/token"

    answer = requests.get(url, headers=bearer(old[use]), timeout=10)
    assert answer.status_code == 200
    login = answer.json()
    assert login["uuid"] == backend.uuid and login["expiration"] == pairing.EXPIRATION
    assert login["accessToken"] not in old.values() and login["refreshToken"] not in old.values()

    device_url = f"{live_server.url}/v1/device/{backend.uuid}"
    for token in old.values():  # both old tokens are dead
        assert requests.get(device_url, headers=bearer(token), timeout=10).status_code == 401
        assert requests.get(url, headers=bearer(token), timeout=10).status_code == 401
    with identity_file(path):
        IdentityManager.save(login)
    assert backend.device_get()["uuid"] == backend.uuid


# shared vs isolated skill settings ----------------------------------------------------

def test_shared_settings_are_seen_by_every_device_isolated_keeps_its_own(live_server, tmp_path):
    skill = "skill-music.openvoiceos"
    a = pair(live_server.url, tmp_path / "a.json")
    b = pair(live_server.url, tmp_path / "b.json")
    c = pair(live_server.url, tmp_path / "c.json")
    response = admin_backend(live_server.url).admin_set_device_info(c.uuid, {"isolated_skills": True})
    assert response.json()["isolated_skills"] is True

    def gid(d):
        return f"@{d.uuid}|{skill}"

    def upload(d, volume):
        d.device_put_skill_settings_v1({"skill_gid": gid(d), "skillMetadata": _meta(volume=("number", volume))})

    upload(a, "3")
    # b announces the skill (definition only): it sees the shared value, not the default
    b.device_upload_skill_metadata({"skill_gid": gid(b), "display_name": "Music",
                                    "skillMetadata": _meta(volume=("number", "10"))})
    assert b.device_get_skill_settings() == {gid(b): {"volume": 3}}
    upload(b, "5")
    assert a.device_get_skill_settings() == {gid(a): {"volume": 5}}

    upload(c, "9")  # isolated: its own copy
    assert c.device_get_skill_settings() == {gid(c): {"volume": 9}}
    assert a.device_get_skill_settings() == {gid(a): {"volume": 5}}
    assert b.device_get_skill_settings() == {gid(b): {"volume": 5}}
    upload(a, "1")
    assert c.device_get_skill_settings() == {gid(c): {"volume": 9}}
    # each device gets its own gid back in v1 too
    assert [e["identifier"] for e in b.device_get_skill_settings_v1()] == [gid(b)]
