"""The sync agent's parts on their own: the remote-config translation (checked against
ovos-backend-client's own where it is installed), the three-way merge, the web_cache
writer and the skill's state file. Runs on both stacks (old and current device)."""
import json
import os

import pytest

from ovos_skill_personal_backend.device import remote_config
from ovos_skill_personal_backend.device.agent import merge
from ovos_skill_personal_backend.device.state import StateFile

SETTING = {
    "uuid": "u-1", "dateFormat": "MDY", "timeFormat": "full", "systemUnit": "imperial",
    "optIn": True, "lang": "en-us",
    "location": {"city": {"code": "Lisbon", "name": "Lisbon",
                          "state": {"code": "14", "name": "Lisbon",
                                    "country": {"code": "PT", "name": "Portugal"}}},
                 "coordinate": {"latitude": 38.7, "longitude": -9.1},
                 "timezone": {"code": "Europe/Lisbon", "name": "Western European",
                              "dstOffset": 3600000, "offset": 0}},
    "listenerSetting": {"wakeWord": "hey_jarvis"},
    "hotwordsSetting": {"hey jarvis": {"module": "ovos-ww-plugin-vosk", "rule": "fuzzy"}},
    "ttsSettings": {"module": "ovos-tts-plugin-piper", "ovos-tts-plugin-piper": {"voice": "alan"}},
}


def test_translation_names_keys_as_mycroft_conf_does():
    config = remote_config.translate(SETTING)
    assert "uuid" not in config
    assert config["date_format"] == "MDY" and config["system_unit"] == "imperial"
    assert config["opt_in"] is True
    assert config["listener"] == {"wake_word": "hey_jarvis"}
    assert config["tts"] == {"module": "ovos-tts-plugin-piper",
                             "ovos-tts-plugin-piper": {"voice": "alan"}}
    assert config["location"]["timezone"]["dst_offset"] == 3600000
    assert config["hotwords"] == {"hey_jarvis": {"module": "ovos-ww-plugin-vosk", "rule": "fuzzy"}}


def test_translation_matches_the_client_library_where_it_is_installed():
    client_config = pytest.importorskip(
        "ovos_backend_client.config", reason="the current-device stack has no ovos-backend-client")
    expected = {}
    client_config._translate_remote(expected, SETTING)
    assert remote_config.translate(SETTING) == expected
    selene_list = {"ttsSettings": [{"@type": "mimic", "active": False, "voice": "ap"},
                                   {"@type": "google", "active": True, "lang": "en"}]}
    expected = {}
    client_config._translate_remote(expected, selene_list)
    assert remote_config.translate(selene_list) == expected


@pytest.fixture
def web_cache(tmp_path, monkeypatch):
    path = tmp_path / "cache" / "web_cache.json"
    monkeypatch.setenv("MYCROFT_WEB_CACHE", str(path))
    return path


def test_web_cache_is_written_once_and_only_when_it_changes(web_cache):
    assert remote_config.web_cache_path() == str(web_cache)
    assert remote_config.write({"system_unit": "metric"}) is True
    first = os.stat(web_cache)
    assert remote_config.write({"system_unit": "metric"}) is False
    assert os.stat(web_cache).st_mtime_ns == first.st_mtime_ns
    assert remote_config.write({"system_unit": "imperial"}) is True
    assert json.loads(web_cache.read_text()) == {"system_unit": "imperial"}
    assert not [p for p in os.listdir(web_cache.parent) if ".tmp-" in p]


def test_protected_keys_are_never_written(web_cache, monkeypatch):
    monkeypatch.setattr(remote_config, "protected_keys", lambda: ["location", "listener.wake_word"])
    remote_config.write(remote_config.translate(SETTING))
    written = json.loads(web_cache.read_text())
    assert "location" not in written and "wake_word" not in written["listener"]
    assert written["system_unit"] == "imperial"


def test_protected_keys_come_from_the_system_config(tmp_path):
    # the real constraint lookup, on the sandbox's system mycroft.conf
    from ovos_config.config import Configuration
    path = os.environ["MYCROFT_SYSTEM_CONFIG"]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"system": {"protected_keys": {"remote": ["location"]}}}, f)
    try:
        Configuration.reload()
        assert "location" in remote_config.protected_keys()
    finally:
        os.remove(path)
        Configuration.reload()


# the merge: the values both sides last agreed on are `base` -------------------------

BASE = {"greeting": "hello", "volume": 5}


def test_a_change_on_one_side_takes_that_sides_value():
    assert merge({**BASE, "volume": 7}, BASE, BASE, device_newer=False) == ({}, {"volume": 7})
    assert merge(BASE, {**BASE, "volume": 7}, BASE, device_newer=True) == ({"volume": 7}, {})


def test_changes_to_different_keys_on_both_sides_are_both_kept():
    to_device, to_backend = merge({**BASE, "volume": 7}, {**BASE, "greeting": "hola"}, BASE,
                                  device_newer=True)
    assert (to_device, to_backend) == ({"greeting": "hola"}, {"volume": 7})


@pytest.mark.parametrize("device_newer, expected", [
    (True, ({}, {"greeting": "bonjour"})),      # the device changed it last: it wins
    (False, ({"greeting": "hola"}, {})),         # the backend changed it last: it wins
])
def test_the_same_key_changed_on_both_sides_goes_to_the_newer(device_newer, expected):
    assert merge({**BASE, "greeting": "bonjour"}, {**BASE, "greeting": "hola"}, BASE,
                 device_newer) == expected


def test_new_keys_travel_and_keys_the_backend_no_longer_serves_are_not_pushed_back():
    assert merge({**BASE, "extra": 1}, BASE, BASE, True) == ({}, {"extra": 1})
    assert merge(BASE, {**BASE, "extra": 1}, BASE, True) == ({"extra": 1}, {})
    # a field the definition dropped: the backend stops serving it, the device keeps it
    assert merge(BASE, {"greeting": "hello"}, BASE, True) == ({}, {})


def test_first_contact_without_a_common_base_keeps_the_newer_side():
    assert merge({"greeting": "a"}, {"greeting": "b"}, {}, device_newer=True) == ({}, {"greeting": "a"})
    assert merge({"greeting": "a"}, {"greeting": "b"}, {}, device_newer=False) == ({"greeting": "b"}, {})


# the skill's state file -------------------------------------------------------------

def test_state_file_survives_a_restart_and_adopts_old_settings_keys(tmp_path):
    path = str(tmp_path / "skill" / "state.json")
    state = StateFile(path)
    legacy = {"port": 6712, "_device_uuid": "u-1", "_pointed_url": "http://127.0.0.1:6712"}
    assert state.adopt(legacy, ("_device_uuid", "_pointed_url", "_previous_config")) is True
    assert legacy == {"port": 6712}
    state.set("manifest", ["a", "b"])
    again = StateFile(path)
    assert again.get("_device_uuid") == "u-1" and again.get("manifest") == ["a", "b"]
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"


def test_a_broken_state_file_starts_empty_instead_of_failing(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("[1, 2")
    assert StateFile(str(path)).get("manifest") is None
