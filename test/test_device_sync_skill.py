"""The skill keeps its own device in sync, end to end: the real ovos-core skill loader
(ovoscope's MiniCroft) with our skill and a second, real skill (the probe in
test/probe_skill) installed beside it; the owner works through the admin API and the
web page of the backend the skill serves. Runs on both stacks."""
import json
import os
import time

import pytest
import requests
from ovos_bus_client.message import Message
from ovos_config.config import Configuration

from browser import Browser
from conftest import ADMIN_KEY, wait_until
from skill_harness import SKILL_ID, Device, read_settings, reset_device, settings_path, \
    skill_settings_path, user_config, write_settings
from ovos_skill_personal_backend.device import remote_config
from ovos_skill_personal_backend.skill import STATE_KEYS

PROBE = "skill-sync-probe.test"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
IN_PROCESS_LIMIT = 5.0  # seconds the issue allows in-process


@pytest.fixture(scope="module")
def device():
    reset_device()
    for path in (skill_settings_path(PROBE), remote_config.web_cache_path()):
        if os.path.exists(path):
            os.remove(path)
    # monitor_own_settings: ovos-workshop watches our settings.json, as ovos-core does on devices
    write_settings(admin_key=ADMIN_KEY, pairing="auto", monitor_own_settings=True)
    dev = Device(skills=(SKILL_ID, PROBE))
    conversation = dev.conversation()
    conversation.say("pair this device")
    assert conversation.last_dialog() == "paired"
    assert wait_until(lambda: dev.skill.agent is not None and dev.skill.agent.last_sync)
    yield dev
    dev.stop()
    reset_device()
    os.remove(skill_settings_path(PROBE))


def admin(device, method, path, **kwargs):
    answer = requests.request(method, f"{device.skill.local_url}/v1/admin{path}", headers=ADMIN,
                              timeout=30, **kwargs)
    assert answer.status_code < 400, answer.text
    return answer.json()


def probe_changed(device, start, key, value, timeout=IN_PROCESS_LIMIT):
    """The probe's settings_change_callback, seen on the bus, with `key` = `value`."""
    return device.wait_for_message(
        lambda m: m.msg_type == "sync-probe.changed" and m.data["settings"].get(key) == value,
        start, timeout)


def probe_file() -> dict:
    """The probe's settings.json, once the skill has finished writing it (ovos-workshop
    truncates and rewrites the file in place)."""
    for _ in range(100):
        try:
            with open(skill_settings_path(PROBE)) as f:
                return json.load(f)
        except ValueError:
            time.sleep(0.02)
    raise AssertionError("the probe's settings.json stays unreadable")


def test_the_probe_skill_reaches_the_backend(device):
    uuid = device.skill.agent.uuid
    record = admin(device, "GET", f"/{uuid}/skill_settings/{PROBE}")
    assert record["settings"] == {"greeting": "hello", "volume": 5, "enabled": True}
    view = admin(device, "GET", f"/devices/{uuid}")
    assert PROBE in view["skills_installed"]
    assert view["last_seen"] and view["settings_synced_at"]


def test_an_admin_api_change_reaches_the_skills_callback(device):
    start = len(device.log)
    current = admin(device, "GET", f"/skill_settings/{PROBE}")["settings"]
    began = time.monotonic()
    admin(device, "PUT", f"/skill_settings/{PROBE}", json={"settings": {**current, "greeting": "hola"}})
    assert probe_changed(device, start, "greeting", "hola")
    print(f"admin API change reached the skill's callback in {time.monotonic() - began:.3f} s")
    assert wait_until(lambda: probe_file()["greeting"] == "hola")


def test_a_web_page_change_reaches_the_skills_callback(device):
    uuid = device.skill.agent.uuid
    browser = Browser(device.skill.server.app.test_client())
    assert browser.login().status_code == 302
    start = len(device.log)
    began = time.monotonic()
    saved = browser.post(f"/admin/skills/device/{uuid}/{PROBE}",
                         data={"setting-greeting": "salut", "setting-volume": "7",
                               "setting-enabled": "on"})
    assert saved.status_code == 302, saved.get_data(as_text=True)
    assert probe_changed(device, start, "volume", 7)
    print(f"web page change reached the skill's callback in {time.monotonic() - began:.3f} s")
    assert wait_until(lambda: probe_file()["greeting"] == "salut" and probe_file()["volume"] == 7)


def test_a_value_the_skill_stores_itself_reaches_the_backend(device):
    uuid = device.skill.agent.uuid
    start = len(device.log)
    device.croft.bus.emit(Message("sync-probe.store", {"volume": 3}))
    assert device.wait_for_message(lambda m: m.msg_type == "sync-probe.stored", start)
    # ovos-core's settings watcher announces the changed file (MiniCroft runs no watcher)
    began = time.monotonic()
    device.croft.bus.emit(Message("ovos.skills.settings_changed", {"skill_id": PROBE}))
    assert wait_until(lambda: admin(device, "GET", f"/{uuid}/skill_settings/{PROBE}")["settings"]
                 .get("volume") == 3, timeout=IN_PROCESS_LIMIT)
    print(f"device change reached the backend in {time.monotonic() - began:.3f} s")


def test_device_preferences_reach_the_configuration(device):
    uuid = device.skill.agent.uuid
    start = len(device.log)
    admin(device, "PUT", f"/{uuid}/prefs", json={"system_unit": "imperial", "date_format": "MDY",
                                                 "time_format": "full", "wake_word": "hey jarvis"})
    admin(device, "PUT", f"/{uuid}/location", json={
        "city": {"code": "Lisbon", "name": "Lisbon",
                 "state": {"code": "14", "name": "Lisbon", "country": {"code": "PT", "name": "Portugal"}}},
        "coordinate": {"latitude": 38.72, "longitude": -9.14},
        "timezone": {"code": "Europe/Lisbon", "name": "Western European Time"}})
    assert device.wait_for_message(lambda m: m.msg_type == "configuration.updated", start,
                                   IN_PROCESS_LIMIT)
    time.sleep(0.5)  # both changes may take two rounds
    Configuration.reload()  # what every service does on configuration.updated
    config = Configuration()
    assert config["system_unit"] == "imperial" and config["date_format"] == "MDY"
    assert config["time_format"] == "full"
    assert config["listener"]["wake_word"] == "hey_jarvis"
    assert config["location"]["city"]["name"] == "Lisbon"
    assert config["location"]["timezone"]["code"] == "Europe/Lisbon"


def test_a_location_set_by_voice_does_not_hide_later_web_changes(device):
    conversation = device.conversation()
    conversation.say("set my location to tokyo")
    assert conversation.last_dialog() == "location.changed"
    assert "location" not in user_config()  # the remote layer carries it
    assert wait_until(lambda: _configured_city() == "Tokyo", timeout=IN_PROCESS_LIMIT)
    uuid = device.skill.agent.uuid
    admin(device, "PUT", f"/{uuid}/location", json={
        "city": {"code": "Porto", "name": "Porto",
                 "state": {"code": "13", "name": "Porto", "country": {"code": "PT", "name": "Portugal"}}},
        "coordinate": {"latitude": 41.15, "longitude": -8.61},
        "timezone": {"code": "Europe/Lisbon", "name": "Western European Time"}})
    assert wait_until(lambda: _configured_city() == "Porto", timeout=IN_PROCESS_LIMIT)


def _configured_city() -> str:
    Configuration.reload()
    return Configuration().get("location", {}).get("city", {}).get("name")


def test_the_skills_own_state_stays_out_of_settings_json(device):
    settings = read_settings()
    assert not set(STATE_KEYS) & set(settings) and "skills" not in settings
    assert device.skill.state.get("_device_uuid") == device.skill.agent.uuid
    assert device.skill.state.get("_pointed_url") == device.skill.local_url


def test_reloads_racing_the_skills_writes_never_lose_the_owners_settings(device):
    """With the settings file watched (as ovos-core does on devices), the skill's own
    bookkeeping must never rewrite settings.json: that was how a reload landing
    mid-write left the backend without its admin key."""
    skill = device.skill
    before = os.stat(settings_path()).st_mtime_ns
    for _ in range(50):  # bookkeeping churn: what pointing, pairing and syncing write
        skill.state.set("_other_backend", "http://elsewhere:6712")
        skill.state.pop("_other_backend")
        skill.agent.run_round()
        skill.settings.reload()
        assert skill.settings.get("admin_key") == ADMIN_KEY
    assert os.stat(settings_path()).st_mtime_ns == before
    assert read_settings()["admin_key"] == ADMIN_KEY
