"""The real ovos-backend-client admin side (`AdminApi`, `DatabaseApi`, `PersonalBackend.admin_*`
and `db_*`) against the real waitress server.

Client calls exercised here:

* `admin_pair` (through `AdminApi.pair`, with its own identity file since it overwrites
  the caller's identity2.json)
* `admin_set_device_info`, `admin_set_device_location`, `admin_set_device_prefs`
  (the PersonalBackend methods: AdminApi's wrappers drop the response)
* `db_list_devices`, `db_get_device`, `db_post_device`, `db_update_device`, `db_delete_device`
  (through `DatabaseApi.list_devices/get_device/add_device/update_device/delete_device`, and
  `db_post_device` directly: `DatabaseApi.add_device` sends a wrong default time_format)
* shared skill settings: `db_post_shared_skill_settings`, `db_list_shared_skill_settings`,
  `db_get_shared_skill_settings`, `db_update_shared_skill_settings`,
  `db_delete_shared_skill_settings`
* per-device skill settings: `db_post_skill_settings`, `db_list_skill_settings`,
  `db_get_skill_settings`, `db_update_skill_settings`, `db_delete_skill_settings`
* pairings (not in the client): raw `GET /v1/admin/pairings`,
  `POST /v1/admin/pairings/{code}/approve|deny`
"""
import uuid as uuidlib

import pytest
import requests

from conftest import make_config
from helpers import (admin_api, admin_backend, admin_headers, bearer, database_api,
                     device_backend, identity_file, pair, read_identity, request_code,
                     restore_identity, serve)  # noqa: F401 (restore_identity: a fixture)

pytestmark = pytest.mark.usefixtures("restore_identity")

LOCATION = {  # AdminApi.set_device_location's documented example, moved to Lisbon
    "city": {"code": "Lisbon", "name": "Lisbon",
             "state": {"code": "11", "name": "Lisboa",
                       "country": {"code": "PT", "name": "Portugal"}}},
    "coordinate": {"latitude": 38.72, "longitude": -9.14},
    "timezone": {"code": "Europe/Lisbon", "name": "Western European Time",
                 "dstOffset": 3600000, "offset": 0}}

PREFS = {  # AdminApi.set_device_prefs's documented example (ww module inside ww_config)
    "time_format": "half", "date_format": "MDY", "system_unit": "imperial", "lang": "pt-pt",
    "wake_word": "hey_mycroft",
    "ww_config": {"phonemes": "HH EY . M AY K R AO F T",
                  "module": "ovos-ww-plugin-pocketsphinx", "threshold": 1e-90},
    "tts_module": "ovos-tts-plugin-mimic", "tts_config": {"voice": "ap"}}


@pytest.fixture
def device(live_server, tmp_path):
    return pair(live_server.url, tmp_path / "device.json")


@pytest.fixture
def db(live_server):
    return database_api(live_server.url)


def _status(live_server, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{live_server.url}/v1/admin/{path}", headers=admin_headers(),
                            timeout=10, **kwargs)


# admin_pair ---------------------------------------------------------------------------

def test_admin_pair_writes_only_the_admins_identity_file(live_server, device, tmp_path):
    device_identity = read_identity(tmp_path / "device.json")
    new_uuid = str(uuidlib.uuid4())
    admin_file = tmp_path / "admin-machine.json"
    with identity_file(admin_file):
        login = admin_api(live_server.url).pair(new_uuid)
    assert login["uuid"] == new_uuid and login["accessToken"]
    assert read_identity(admin_file)["access"] == login["accessToken"]
    assert read_identity(tmp_path / "device.json") == device_identity  # untouched
    # the identity admin_pair saved is a working device identity
    assert device_backend(live_server.url, admin_file).device_get()["uuid"] == new_uuid


def test_admin_pair_without_a_uuid_creates_a_device(live_server, tmp_path, store):
    """AdminApi.pair() sends the literal path /admin/None/pair: a new device gets a fresh uuid."""
    with identity_file(tmp_path / "admin-machine.json"):
        login = admin_api(live_server.url).pair()
    assert str(uuidlib.UUID(login["uuid"])) == login["uuid"]
    assert store.devices.keys() == [login["uuid"]]


def test_admin_pair_of_an_existing_device_rotates_its_tokens(live_server, device, tmp_path):
    old_token = device.access_token
    with identity_file(tmp_path / "admin-machine.json"):
        login = admin_api(live_server.url).pair(device.uuid)
    url = f"{live_server.url}/v1/device/{device.uuid}"
    assert requests.get(url, headers=bearer(old_token), timeout=10).status_code == 401
    assert requests.get(url, headers=bearer(login["accessToken"]), timeout=10).status_code == 200


# device info, location, prefs -----------------------------------------------------------

def test_set_device_info_returns_the_device(live_server, device):
    info = {"opt_in": True, "name": "Kitchen", "device_location": "kitchen",
            "email": "notifications@example.org", "isolated_skills": False, "lang": "en-gb"}
    response = admin_backend(live_server.url).admin_set_device_info(device.uuid, info)
    assert response.status_code == 200
    row = response.json()
    assert {k: row[k] for k in info} == info
    assert row["token"] == "" and "tokens" not in row  # no token hashes leave the server
    assert device.device_get()["name"] == "Kitchen"
    assert device.device_get()["description"] == "kitchen"
    assert device.device_get_settings()["optIn"] is True


def test_set_device_location_returns_the_device(live_server, device):
    response = admin_backend(live_server.url).admin_set_device_location(device.uuid, LOCATION)
    assert response.status_code == 200
    location = device.device_get_location()
    assert response.json()["location"] == location
    assert location["city"]["name"] == "Lisbon" and location["timezone"]["code"] == "Europe/Lisbon"
    assert location["timezone"]["offset"] == 0 and location["timezone"]["dstOffset"] == 3600000


def test_set_device_prefs_returns_the_device(live_server, device):
    response = admin_backend(live_server.url).admin_set_device_prefs(device.uuid, PREFS)
    assert response.status_code == 200
    assert response.json()["time_format"] == "half"
    settings = device.device_get_settings()
    assert (settings["timeFormat"], settings["dateFormat"], settings["systemUnit"],
            settings["lang"]) == ("half", "MDY", "imperial", "pt-pt")
    assert settings["listenerSetting"] == {"wakeWord": "hey_mycroft"}
    assert settings["hotwordsSetting"]["hey_mycroft"]["module"] == "ovos-ww-plugin-pocketsphinx"
    assert settings["ttsSettings"] == {"module": "ovos-tts-plugin-mimic",
                                       "ovos-tts-plugin-mimic": {"voice": "ap"}}


@pytest.mark.parametrize("call, body, status", [
    ("admin_set_device_info", {"colour": "red"}, 400),
    ("admin_set_device_info", {"opt_in": "yes"}, 400),
    ("admin_set_device_prefs", {"time_format": "24h"}, 400),
    ("admin_set_device_location", {"city": {"name": "Nowhere"}}, 400),
    ("admin_set_device_location", dict(LOCATION, timezone={"code": "Mars/Olympus"}), 400),
])
def test_bad_device_changes_are_json_4xx(live_server, device, call, body, status):
    response = getattr(admin_backend(live_server.url), call)(device.uuid, body)
    assert response.status_code == status and response.json()["error"]


@pytest.mark.parametrize("call, body", [("admin_set_device_info", {"name": "x"}),
                                        ("admin_set_device_prefs", {"lang": "en-us"}),
                                        ("admin_set_device_location", LOCATION)])
def test_unknown_device_is_json_404(live_server, call, body):
    response = getattr(admin_backend(live_server.url), call)(str(uuidlib.uuid4()), body)
    assert response.status_code == 404 and "unknown device" in response.json()["error"]


# device CRUD ----------------------------------------------------------------------------

def test_device_crud(live_server, device, db):
    assert [d["uuid"] for d in db.list_devices()] == [device.uuid]
    assert db.get_device(device.uuid)["name"] == f"Device-{device.uuid[:8]}"

    new_uuid, token = str(uuidlib.uuid4()), "a-token-of-the-owners-choice"
    # DatabaseApi.add_device defaults time_format to the device config's *date_format*
    # ("MDY"): refused with a JSON error naming the field, nothing created
    refused = db.add_device(new_uuid, token, name="Office")
    assert "time_format" in refused["error"]
    assert db.list_devices() == [db.get_device(device.uuid)]
    row = db.add_device(new_uuid, token, name="Office", device_location="office",
                        location=LOCATION, lang="en-us", time_format="full")
    assert row["uuid"] == new_uuid and row["name"] == "Office" and row["token"] == ""
    assert row["location"]["city"]["name"] == "Lisbon"
    # the token given at creation works as that device's bearer
    assert requests.get(f"{live_server.url}/v1/device/{new_uuid}", headers=bearer(token),
                        timeout=10).json()["name"] == "Office"

    row = db.update_device(new_uuid, name="Study", date_format="MDY", time_format="half",
                           ww_id="hey_mycroft", voice_id="alan", system_unit="imperial")
    assert (row["name"], row["date_format"], row["time_format"], row["ww_id"], row["voice_id"],
            row["system_unit"]) == ("Study", "MDY", "half", "hey_mycroft", "alan", "imperial")
    assert db.get_device(new_uuid)["date_format"] == "MDY"
    assert sorted(d["uuid"] for d in db.list_devices()) == sorted([device.uuid, new_uuid])

    # PersonalBackend.db_post_device (correct defaults) on an existing uuid updates it
    row = db.backend.db_post_device(new_uuid, token, name="Den")
    assert row["name"] == "Den" and row["date_format"] == "MDY"

    assert db.delete_device(new_uuid)["success"] is True
    assert requests.get(f"{live_server.url}/v1/device/{new_uuid}", headers=bearer(token),
                        timeout=10).status_code == 401
    assert [d["uuid"] for d in db.list_devices()] == [device.uuid]


@pytest.mark.parametrize("method, path", [
    ("GET", "devices/{uuid}"), ("PUT", "devices/{uuid}"), ("DELETE", "devices/{uuid}"),
    ("GET", "{uuid}/skill_settings/list"), ("GET", "{uuid}/skill_settings/skill-x.y"),
])
def test_unknown_device_in_crud_is_json_404(live_server, method, path):
    response = _status(live_server, method, path.format(uuid=uuidlib.uuid4()),
                       json={"name": "x"} if method == "PUT" else None)
    assert response.status_code == 404 and "error" in response.json()


def test_unknown_device_through_the_client_is_an_error_dict(live_server, db):
    """The client does not look at statuses: the caller gets the JSON error as data."""
    assert "error" in db.get_device(str(uuidlib.uuid4()))
    assert "error" in db.delete_device(str(uuidlib.uuid4()))


# skill settings -------------------------------------------------------------------------

META = {"skillMetadata": {"sections": [{"name": "Weather", "fields": [
    {"name": "units", "type": "select", "label": "Units", "value": "metric",
     "options": "Metric|metric;Imperial|imperial"},
    {"name": "hourly", "type": "checkbox", "label": "Hourly", "value": "false"}]}]}}


def test_shared_skill_settings_crud_reaches_devices(live_server, device, db):
    skill = "skill-weather.openvoiceos"
    gid = f"@{device.uuid}|{skill}"
    device.device_upload_skills_data({"skills": [{"name": skill, "skill_gid": gid}], "blacklist": []})

    row = db.add_shared_skill_settings(skill, "Weather", {"units": "imperial"}, META)
    assert row["skill_id"] == skill and row["settings"] == {"units": "imperial", "hourly": False}
    assert [r["skill_id"] for r in db.list_shared_skill_settings()] == [skill]
    assert db.get_shared_skill_settings(skill)["display_name"] == "Weather"
    assert device.device_get_skill_settings() == {gid: {"units": "imperial", "hourly": False}}

    # settings_json / metadata_json may also come JSON-encoded, as the old manager sent them
    row = db.update_shared_skill_settings(skill, settings_json='{"units": "metric", "hourly": true}')
    assert row["settings"] == {"units": "metric", "hourly": True}
    assert row["meta"]["sections"][0]["name"] == "Weather"  # kept when not given
    fields = device.device_get_skill_settings_v1()[0]["skillMetadata"]["sections"][0]["fields"]
    assert [f["value"] for f in fields] == ["metric", "true"]

    assert db.delete_shared_skill_settings(skill)["success"] is True
    assert db.list_shared_skill_settings() == []
    assert device.device_get_skill_settings() == {}
    assert _status(live_server, "GET", f"skill_settings/{skill}").status_code == 404
    assert _status(live_server, "DELETE", f"skill_settings/{skill}").status_code == 404


def test_update_creates_shared_settings(live_server, db):
    """PUT is an upsert (the old backend answered 500 when creating)."""
    row = db.update_shared_skill_settings("skill-new.someone", "New", {"a": 1})
    assert row["settings"] == {"a": 1}
    assert db.get_shared_skill_settings("skill-new.someone")["display_name"] == "New"


def test_device_skill_settings_override_shared(live_server, tmp_path, db):
    skill = "skill-weather.openvoiceos"
    a = pair(live_server.url, tmp_path / "a.json")
    b = pair(live_server.url, tmp_path / "b.json")
    for d in (a, b):
        d.device_upload_skills_data({"skills": [{"name": skill, "skill_gid": f"@{d.uuid}|{skill}"}],
                                     "blacklist": []})
    db.add_shared_skill_settings(skill, "Weather", {"units": "metric"}, META)

    row = db.add_skill_settings(a.uuid, skill, "Weather", {"units": "imperial"}, None)
    assert row["settings"] == {"units": "imperial"} and row["skill_gid"] == f"@{a.uuid}|{skill}"
    assert [r["skill_id"] for r in db.list_skill_settings(a.uuid)] == [skill]
    assert db.get_skill_settings(a.uuid, skill)["settings"] == {"units": "imperial"}
    assert a.device_get_skill_settings() == {f"@{a.uuid}|{skill}": {"units": "imperial"}}
    assert b.device_get_skill_settings() == {f"@{b.uuid}|{skill}": {"units": "metric", "hourly": False}}

    row = db.update_skill_settings(a.uuid, skill, settings_json={"units": "metric", "hourly": True})
    assert row["settings"] == {"units": "metric", "hourly": True}
    assert a.device_get_skill_settings() == {f"@{a.uuid}|{skill}": {"units": "metric", "hourly": True}}

    assert db.delete_skill_settings(a.uuid, skill)["success"] is True
    # back to the shared values
    assert a.device_get_skill_settings() == {f"@{a.uuid}|{skill}": {"units": "metric", "hourly": False}}
    assert _status(live_server, "DELETE", f"{a.uuid}/skill_settings/{skill}").status_code == 404


@pytest.mark.parametrize("body", [
    {"skill_id": "", "settings_json": {}},
    {"skill_id": "skill-x.y", "settings_json": "{not json"},
    {"skill_id": "skill-x.y", "settings_json": [1, 2]},
    {"skill_id": "skill-x.y", "metadata_json": {"skillMetadata": {"sections": "nope"}}},
])
def test_bad_skill_settings_are_json_400(live_server, body):
    response = _status(live_server, "POST", "skill_settings", json=body)
    assert response.status_code == 400 and response.json()["error"]


# pairings (confirm mode) ------------------------------------------------------------------

@pytest.fixture
def confirm_server(tmp_path):
    with serve(make_config(tmp_path / "confirm-data", pairing="confirm")) as server:
        yield server


def test_pairings_list_approve_deny(confirm_server, tmp_path):
    url = confirm_server.url
    first = device_backend(url, tmp_path / "first.json")
    second = device_backend(url, tmp_path / "second.json")
    code1, code2 = request_code(first), request_code(second)
    with pytest.raises(requests.HTTPError):  # pending: non-JSON, the device keeps polling
        first.device_activate(code1["state"], code1["token"], core_version="2.1.1")

    pending = requests.get(f"{url}/v1/admin/pairings", headers=admin_headers(), timeout=10).json()
    assert [p["code"] for p in pending] == [code1["code"], code2["code"]]
    assert pending[0]["device"]["coreVersion"] == "2.1.1"
    # nothing secret in the listing: no pairing token, no state (it is the device uuid)
    assert code1["token"] not in str(pending) and code1["state"] not in str(pending)

    answer = requests.post(f"{url}/v1/admin/pairings/{code1['code'].lower()}/approve",
                           headers=admin_headers(), timeout=10)
    assert answer.status_code == 200 and answer.json() == {"code": code1["code"], "status": "approved"}
    answer = requests.post(f"{url}/v1/admin/pairings/{code2['code']}/deny", headers=admin_headers(), timeout=10)
    assert answer.json() == {"code": code2["code"], "status": "denied"}
    assert requests.get(f"{url}/v1/admin/pairings", headers=admin_headers(), timeout=10).json() == []

    login = first.device_activate(code1["state"], code1["token"])
    assert login["uuid"] == code1["state"]
    with pytest.raises(requests.HTTPError):
        second.device_activate(code2["state"], code2["token"])
    for code in (code1["code"], code2["code"], "AAAAAA"):
        for action in ("approve", "deny"):
            answer = requests.post(f"{url}/v1/admin/pairings/{code}/{action}",
                                   headers=admin_headers(), timeout=10)
            assert answer.status_code == 404 and "error" in answer.json()
