"""Admin API calls of the real ovos-backend-client against the real server: backend
config, wake-word and voice definitions, and what definitions do to devices.

Client calls exercised here (the device, skill-settings and pairing calls are in
test_client_admin.py; recordings, metrics and OAuth in their owners' files):

* `admin_get_backend_config`, `admin_update_backend_config` (through AdminApi)
* `db_list_ww_definitions`, `db_get_ww_definition`, `db_post_ww_definition`,
  `db_update_ww_definition`, `db_delete_ww_definition`
* `db_list_voice_definitions`, `db_get_voice_definition`, `db_post_voice_definition`,
  `db_update_voice_definition`, `db_delete_voice_definition`
* `db_update_device` / `db_post_device` with `ww_id` / `voice_id`
"""
import json
import os
import stat

import pytest
import requests

from conftest import ADMIN_KEY
from helpers import admin_api, admin_headers, database_api, pair, restore_identity  # noqa: F401
from ovos_skill_personal_backend.backend import create_app

pytestmark = pytest.mark.usefixtures("restore_identity")

NEW_KEY = "a-brand-new-admin-key-42"


@pytest.fixture
def config_path(tmp_path):
    path = tmp_path / "ovos_backend.conf"
    path.write_text(json.dumps({"microservices": {"owm_key": "owm-secret-1234"}}))
    return path


@pytest.fixture
def app(config, store, config_path):
    """The app knows the file it was configured from (the live_server fixture serves it)."""
    config["microservices"]["owm_key"] = "owm-secret-1234"
    return create_app(config, store, config_path=str(config_path))


@pytest.fixture
def admin(live_server):
    return admin_api(live_server.url)


@pytest.fixture
def db(live_server):
    return database_api(live_server.url)


def _admin(live_server, method: str, path: str, key: str = ADMIN_KEY, **kwargs) -> requests.Response:
    return requests.request(method, f"{live_server.url}/v1/admin/{path}",
                            headers=admin_headers(key), timeout=10, **kwargs)


# backend configuration -----------------------------------------------------------------

def test_get_config_masks_every_secret(admin, config):
    shown = admin.get_backend_config()
    assert shown["server"]["admin_key"] == "********"
    assert shown["microservices"]["owm_key"] == "********"
    assert shown["microservices"]["wolfram_key"] == ""  # unset stays visibly unset
    assert ADMIN_KEY not in json.dumps(shown) and "owm-secret" not in json.dumps(shown)
    assert shown["lang"] == config["lang"] and shown["location"] == config["location"]


def test_update_config_applies_saves_and_keeps_other_keys(admin, config, config_path):
    answer = admin.update_backend_config({"lang": "pt-PT", "date_format": "MDY",
                                          "listener": {"record_wakewords": True}})
    assert answer["restart_required"] == []
    assert answer["changed"] == ["date_format", "lang", "listener.record_wakewords"]
    # in memory at once
    assert (config["lang"], config["date_format"], config["listener"]["record_wakewords"]) == \
        ("pt-pt", "MDY", True)
    assert admin.get_backend_config()["date_format"] == "MDY"
    # in the file the server was started from, merged with what it had
    saved = json.loads(config_path.read_text())
    assert saved == {"microservices": {"owm_key": "owm-secret-1234"}, "lang": "pt-PT",
                     "date_format": "MDY", "listener": {"record_wakewords": True}}
    assert stat.S_IMODE(os.stat(config_path).st_mode) == 0o600  # it holds secrets


def test_get_config_has_the_keys_the_old_manager_reads(admin, live_server):
    shown = admin.get_backend_config()
    assert (shown["server"]["skip_auth"], shown["server"]["geolocate"],
            shown["server"]["override_location"]) == (False, False, True)
    assert shown["default_values"] == {"ww_id": "", "voice_id": "", "stt_id": ""}
    assert shown["stt_servers"][0].endswith(":0/v1/stt")


def test_masked_secrets_posted_back_are_kept(admin, config, config_path):
    """The old manager UI posts the whole (masked) config back after an edit, with the
    old backend's keys: secrets are kept, the old keys as shown change nothing and are not
    saved (changing one is refused: test_legacy_config_keys.py)."""
    whole = admin.get_backend_config()
    whole["time_format"] = "half"
    answer = admin.update_backend_config(whole)
    assert answer["changed"] == ["time_format"]
    assert "skip_auth" not in config["server"] and "stt_servers" not in config
    assert config["microservices"]["owm_key"] == "owm-secret-1234"
    assert config["server"]["admin_key"] == ADMIN_KEY
    assert json.loads(config_path.read_text()) == {"microservices": {"owm_key": "owm-secret-1234"},
                                                   "time_format": "half"}


def test_start_only_keys_are_saved_but_wait_for_a_restart(admin, config, config_path, live_server):
    answer = admin.update_backend_config({"server": {"port": 7123, "url": "http://backend.lan:7123"}})
    assert answer["restart_required"] == ["server.port"]
    assert config["server"]["port"] == 0  # still what the running server uses
    assert config["server"]["url"] == "http://backend.lan:7123"  # applied at once
    assert json.loads(config_path.read_text())["server"] == {"port": 7123,
                                                             "url": "http://backend.lan:7123"}


def test_new_admin_key_takes_effect_at_once(live_server, admin, config):
    answer = admin.update_backend_config({"server": {"admin_key": NEW_KEY}})
    assert answer["config"]["server"]["admin_key"] == "********"
    assert _admin(live_server, "GET", "config").status_code == 401
    assert _admin(live_server, "GET", "config", key=NEW_KEY).status_code == 200


@pytest.mark.parametrize("delta, message", [
    ({"system_unit": "furlongs"}, "system_unit must be one of"),
    ({"server": {"port": "6712"}}, "server.port must be of type int"),
    ({"server": {"admin_key": "short"}}, "at least 16 characters"),
    ({"server": {"admin_key": ""}}, "cannot be cleared"),
    ({"lang": ""}, "lang must be"),
    ({"colour": "red"}, "unknown config keys: ['colour']"),
    ({"location": {"coordinate": {"latitude": 1, "longitude": 2},
                   "timezone": {"code": "Mars/Olympus"}}}, "IANA time zone"),
    ({"location": "Lisbon"}, "location must be an object"),
])
def test_bad_config_is_a_json_400_and_changes_nothing(live_server, admin, config, config_path,
                                                      delta, message):
    before = json.dumps(config, sort_keys=True)
    response = _admin(live_server, "POST", "config", json={"config": delta})
    assert response.status_code == 400 and message in response.json()["error"]
    assert json.dumps(config, sort_keys=True) == before
    assert json.loads(config_path.read_text()) == {"microservices": {"owm_key": "owm-secret-1234"}}
    assert "error" in admin.update_backend_config(delta)  # the client hands the error back as data


@pytest.mark.parametrize("body", [None, [], {"config": "lang=en"}, {"config": ["x"]}])
def test_config_body_must_hold_an_object(live_server, body):
    response = _admin(live_server, "POST", "config", json=body)
    assert response.status_code == 400 and response.json()["error"]


def test_location_in_config_is_normalised(admin, config):
    lisbon = {"city": {"name": "Lisbon", "state": {"name": "Lisboa", "country": {"code": "PT",
                                                                                "name": "Portugal"}}},
              "coordinate": {"latitude": 38.72, "longitude": -9.14},
              "timezone": {"code": "Europe/Lisbon"}}
    admin.update_backend_config({"location": lisbon})
    assert config["location"]["timezone"] == {"code": "Europe/Lisbon", "name": "Europe/Lisbon",
                                              "offset": 0, "dstOffset": 3600000}
    assert config["location"]["city"]["code"] == "Lisbon"


def test_config_needs_the_admin_key(live_server):
    assert _admin(live_server, "GET", "config", key="wrong-key-wrong-key").status_code == 401
    assert _admin(live_server, "POST", "config", key="", json={"config": {}}).status_code == 401


# wake-word definitions -----------------------------------------------------------------

WW_CONFIG = {"phonemes": "HH EY . M AY K R AO F T", "threshold": 1e-90}


def test_ww_definition_crud(live_server, db):
    row = db.add_ww_definition("hey mycroft", "en-us", WW_CONFIG, "ovos-ww-plugin-pocketsphinx")
    ww_id = row["ww_id"]
    assert row == {"ww_id": ww_id, "name": "hey mycroft", "lang": "en-us",
                   "plugin": "ovos-ww-plugin-pocketsphinx", "ww_config": WW_CONFIG}
    assert " " not in ww_id and "/" not in ww_id
    # the same definition again is the same entry
    assert db.add_ww_definition("hey mycroft", "en-us", WW_CONFIG,
                                "ovos-ww-plugin-pocketsphinx")["ww_id"] == ww_id
    assert db.list_ww_definitions() == [row]
    assert db.get_ww_definition(ww_id) == row

    # PUT changes the given fields (None keeps) and keeps the id
    row = db.update_ww_definition(ww_id, None, "en-gb", None, None)
    assert (row["ww_id"], row["lang"], row["name"]) == (ww_id, "en-gb", "hey mycroft")
    # PUT to a new id creates it under that id (the old backend crashed)
    row = db.update_ww_definition("computer", name="computer", lang="en-us",
                                  ww_config={"model": "computer.pb"}, plugin="ovos-ww-plugin-precise")
    assert row["ww_id"] == "computer" and db.get_ww_definition("computer")["name"] == "computer"
    assert sorted(r["ww_id"] for r in db.list_ww_definitions()) == sorted([ww_id, "computer"])

    assert db.delete_ww_definition("computer")["success"] is True
    assert _admin(live_server, "GET", "ww_defs/computer").status_code == 404
    assert _admin(live_server, "DELETE", "ww_defs/computer").status_code == 404
    assert "error" in db.get_ww_definition("computer")


def test_ww_plugin_may_come_inside_the_config(db):
    row = db.add_ww_definition("hey jarvis", None, {"module": "ovos-ww-plugin-vosk", "rule": "fuzzy"}, None)
    assert row["plugin"] == "ovos-ww-plugin-vosk" and row["ww_config"] == {"rule": "fuzzy"}
    assert row["lang"] == "en-us"  # the backend's language


@pytest.mark.parametrize("body", [
    {"lang": "en-us", "plugin": "p", "ww_config": {}},  # no name
    {"name": "x", "lang": "en-us", "ww_config": {}},    # no plugin
    {"name": "x", "plugin": "p", "ww_config": "threshold=1"},
    {"name": "x", "plugin": "p", "lang": "english please"},
    {"name": "x", "plugin": "p", "colour": "red"},
    ["not", "an", "object"],
])
def test_bad_ww_definition_is_a_json_400(live_server, body):
    response = _admin(live_server, "POST", "ww_defs", json=body)
    assert response.status_code == 400 and response.json()["error"]
    assert _admin(live_server, "GET", "ww_defs/list").json() == []


# voice definitions ------------------------------------------------------------------------

def test_voice_definition_crud(live_server, db):
    row = db.add_voice_definition("Alan", "en-gb", "ovos-tts-plugin-mimic", {"voice": "ap"}, True, "male")
    voice_id = row["voice_id"]
    assert row == {"voice_id": voice_id, "name": "Alan", "lang": "en-gb",
                   "plugin": "ovos-tts-plugin-mimic", "tts_config": {"voice": "ap"},
                   "offline": True, "gender": "male"}
    assert db.list_voice_definitions() == [row]
    assert db.get_voice_definition(voice_id) == row

    row = db.update_voice_definition(voice_id, offline=False)
    assert row["offline"] is False and row["gender"] == "male" and row["voice_id"] == voice_id
    row = db.update_voice_definition("piper-pt", name="Tugão", lang="pt-pt", plugin="ovos-tts-plugin-piper",
                                     tts_config={"model": "pt_PT-tugão-medium"}, offline=True)
    assert row["voice_id"] == "piper-pt" and row["gender"] is None

    assert db.delete_voice_definition(voice_id)["success"] is True
    assert [r["voice_id"] for r in db.list_voice_definitions()] == ["piper-pt"]
    assert _admin(live_server, "GET", f"voice_defs/{voice_id}").status_code == 404
    assert "error" in db.delete_voice_definition(voice_id)


@pytest.mark.parametrize("body", [
    {"lang": "en-us", "tts_config": {}},                        # no plugin
    {"plugin": "p", "offline": "yes"},
    {"plugin": "p", "tts_config": ["voice"]},
])
def test_bad_voice_definition_is_a_json_400(live_server, body):
    response = _admin(live_server, "POST", "voice_defs", json=body)
    assert response.status_code == 400 and response.json()["error"]


# definitions given to devices ---------------------------------------------------------------

def test_device_gets_the_definitions_it_is_given(live_server, db, tmp_path):
    device = pair(live_server.url, tmp_path / "device.json")
    ww_id = db.add_ww_definition("hey mycroft", "en-us", WW_CONFIG, "ovos-ww-plugin-pocketsphinx")["ww_id"]
    voice_id = db.add_voice_definition("Alan", "en-gb", "ovos-tts-plugin-mimic", {"voice": "ap"}, True)["voice_id"]

    row = db.update_device(device.uuid, ww_id=ww_id, voice_id=voice_id, time_format="half")
    assert (row["ww_id"], row["voice_id"], row["time_format"]) == (ww_id, voice_id, "half")
    settings = device.device_get_settings()
    assert settings["listenerSetting"] == {"wakeWord": "hey_mycroft"}
    assert settings["hotwordsSetting"] == {
        "hey mycroft": {"module": "ovos-ww-plugin-pocketsphinx", **WW_CONFIG}}
    assert settings["ttsSettings"] == {"module": "ovos-tts-plugin-mimic",
                                       "ovos-tts-plugin-mimic": {"voice": "ap"}}

    # the manager echoes the row back with every edit: the definitions stay applied
    row = db.update_device(device.uuid, name="Kitchen", ww_id=ww_id, voice_id=voice_id)
    assert device.device_get_settings()["ttsSettings"]["module"] == "ovos-tts-plugin-mimic"
    # an id the catalogue does not hold is kept as a plain reference
    row = db.update_device(device.uuid, voice_id="some-old-voice")
    assert row["voice_id"] == "some-old-voice"
    assert device.device_get_settings()["ttsSettings"]["module"] == "ovos-tts-plugin-mimic"


def test_device_created_with_definitions(live_server, db):
    ww_id = db.add_ww_definition("computer", "en-us", {}, "ovos-ww-plugin-precise")["ww_id"]
    row = db.backend.db_post_device("5f1c3e2a-0000-4000-8000-000000000001", "a-token-of-my-choosing",
                                    name="Office", ww_id=ww_id)
    assert row["ww_id"] == ww_id and row["wake_word"] == "computer"
    assert row["ww_config"] == {"module": "ovos-ww-plugin-precise"}


def test_a_denial_is_undone_through_the_admin_api(tmp_path):
    """deny, then undeny: the same device, still polling, pairs once approved."""
    from conftest import make_config
    from helpers import serve
    config = make_config(tmp_path / "data", pairing="confirm")
    with serve(config) as server:
        url = server.url
        state = "undeny-" + os.urandom(4).hex()
        code = requests.get(f"{url}/v1/device/code", params={"state": state}, timeout=10).json()

        def activate():
            return requests.post(f"{url}/v1/device/activate", timeout=10,
                                 json={"state": state, "token": code["token"]})

        def post(action):
            return requests.post(f"{url}/v1/admin/pairings/{code['code']}/{action}",
                                 headers=admin_headers(), timeout=10)

        assert post("deny").status_code == 200
        assert activate().status_code == 403
        assert post("undeny").status_code == 200
        assert post("undeny").status_code == 404  # nothing denied any more
        assert post("approve").status_code == 200
        login = activate().json()
        assert login["uuid"] and login["accessToken"]
