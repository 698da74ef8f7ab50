"""The administration intents added for #13, end to end through ovos-core's intent service
(padacioso): denying a waiting device, asking who waits, which devices are online, and the
backend-wide recording switches (with a yes/no), checked against what the admin API sees."""
import json
import os
import time

import pytest
import requests

from conftest import ADMIN_KEY, SANDBOX, make_config
from helpers import admin_headers
from ovos_skill_personal_backend.backend import config as config_module
from ovos_skill_personal_backend.backend import devices, pairing
from ovos_skill_personal_backend.backend.store import Store
from skill_harness import running_device, spoken_code
from test_skill_intents import add_device, fresh_skill, request


@pytest.fixture(scope="module")
def device():
    yield from running_device(admin_key=ADMIN_KEY)


@pytest.fixture
def skill(device):
    return fresh_skill(device)


@pytest.fixture
def talk(device, skill):
    return device.conversation()


@pytest.fixture
def house(skill):
    """The skill with both backend-wide recording switches off, in the file and running;
    the file goes afterwards (later test modules start their backend from it)."""
    def switch_off():
        path = config_module.default_config_path()
        if os.path.exists(path):
            os.remove(path)
        skill.backend_config["listener"].update(record_wakewords=False, record_utterances=False)

    switch_off()
    yield skill
    switch_off()


def admin_config(skill) -> dict:
    """The running config as the admin API shows it (the same server the web page uses)."""
    response = requests.get(f"{skill.local_url}/v1/admin/config", headers=admin_headers(),
                            timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def saved_listener() -> dict:
    with open(config_module.default_config_path()) as f:
        return json.load(f).get("listener", {})


# denying a waiting device ---------------------------------------------------------------

def test_deny_the_only_waiting_device(talk, skill):
    talk.say("deny the new device")
    assert talk.last_dialog() == "nothing.pending"
    code = request(skill)
    talk.say("reject the new speaker")
    assert talk.last_dialog() == "denied"
    assert talk.last_data()["code"] == " ".join(code)
    assert skill.store.pairings.get(code)["status"] == "denied"
    assert pairing.pending(skill.store) == []
    assert [p["code"] for p in pairing.denied(skill.store)] == [code]  # the admin API's list


# approving and denying by code (the same question when several wait), each way
DECISIONS = [("approve", "approve pairing code", "approve the new device", "which.code",
              "approved"),
             ("deny", "reject pairing code", "don't let the new device in", "which.code.deny",
              "denied")]


@pytest.mark.parametrize("verb, by_code, by_question, question, status", DECISIONS)
def test_decide_by_spoken_code(talk, skill, verb, by_code, by_question, question, status):
    first, second = request(skill), request(skill)
    talk.say(f"{by_code} {spoken_code(second)}")  # digits as words: "seven", "three"
    assert talk.last_dialog() == status
    assert skill.store.pairings.get(second)["status"] == status
    assert skill.store.pairings.get(first)["status"] == "pending"
    talk.say(f"{verb} code x x x x x x")
    assert talk.last_dialog() == "no.such.code"


@pytest.mark.parametrize("verb, by_code, by_question, question, status", DECISIONS)
def test_decide_asks_which_when_several_wait(talk, skill, verb, by_code, by_question, question,
                                             status):
    first, second = request(skill), request(skill)
    talk.say(by_question)
    assert talk.last_dialog() == question
    talk.say(" ".join(second.lower()))
    assert talk.last_dialog() == status
    assert skill.store.pairings.get(second)["status"] == status
    assert skill.store.pairings.get(first)["status"] == "pending"


# who is waiting -------------------------------------------------------------------------

def test_is_any_device_waiting(talk, skill):
    talk.say("is any device waiting to pair")
    assert talk.last_dialog() == "nothing.pending"
    first = request(skill)
    talk.say("are there any pending pairing requests")
    assert talk.last_dialog() == "one.waiting"
    assert talk.last_data()["code"] == " ".join(first)
    second = request(skill)
    talk.say("who wants to pair")
    assert talk.last_dialog() == "several.waiting"
    assert talk.last_data()["count"] == 2
    assert talk.last_data()["codes"] == f"{' '.join(first)} and {' '.join(second)}"


# which devices are online ---------------------------------------------------------------

def test_which_devices_are_online(talk, skill):
    talk.say("which devices are online")
    assert talk.last_dialog() == "no.devices"
    kitchen = add_device(skill, "Kitchen")
    bedroom = add_device(skill, "Bedroom")
    talk.say("are my speakers online")
    assert talk.last_dialog() == "online.none"  # paired, but never made a request
    assert talk.last_data()["offline"] == "Kitchen and Bedroom"

    # a real authenticated request marks a device as seen
    response = requests.get(f"{skill.local_url}/v1/device/{kitchen['uuid']}",
                            headers={"Authorization": f"Bearer {kitchen['accessToken']}"},
                            timeout=10)
    assert response.status_code == 200
    talk.say("which of my devices are online")
    assert talk.last_dialog() == "online.some"
    assert talk.last_data() == {"online": "Kitchen", "offline": "Bedroom"}

    skill.store.presence.seen(bedroom["uuid"])
    talk.say("what devices are online")
    assert talk.last_dialog() == "online.all"
    assert talk.last_data()["names"] == "Kitchen and Bedroom"


def test_presence_report_uses_last_seen():
    """The window itself, on the domain function the intent calls (no clock to wait on)."""
    config = make_config(os.path.join(SANDBOX, f"presence-{time.monotonic_ns()}"))
    store = Store(config["data_path"])
    seen = pairing.pair_directly(store, config)["uuid"]
    store.presence.seen(seen)
    pairing.pair_directly(store, config)
    now = time.time()
    online, offline = devices.presence_report(store, now)
    assert [d["uuid"] for d in online] == [seen] and len(offline) == 1
    online, offline = devices.presence_report(store, now + devices.ONLINE_SECONDS + 1)
    assert online == [] and seen in [d["uuid"] for d in offline]
    assert offline[-1]["last_seen"] is None  # never seen: still listed, as offline


# backend-wide recording -----------------------------------------------------------------

def test_house_wake_word_recording_after_yes(talk, house):
    talk.say("start recording wake words for the whole house")
    assert talk.last_dialog() == "confirm.house.recording.on"
    assert talk.last_data()["what"] == "wake words"
    talk.say("yes")
    assert talk.last_dialog() == "house.recording.on"
    listener = admin_config(house)["listener"]
    assert listener["record_wakewords"] is True
    assert listener["record_utterances"] is False  # only what was asked for
    assert saved_listener() == {"record_wakewords": True}  # kept across restarts

    talk.say("record wake words from all devices")
    assert talk.last_dialog() == "house.recording.already.on"


def test_house_recording_after_no_changes_nothing(talk, house):
    talk.say("turn on recording for the whole house")
    assert talk.last_dialog() == "confirm.house.recording.on"
    assert talk.last_data()["what"] == "wake words and spoken commands"
    talk.say("no")
    assert talk.last_dialog() == "house.recording.unchanged"
    listener = admin_config(house)["listener"]
    assert not listener["record_wakewords"] and not listener["record_utterances"]
    assert not os.path.exists(config_module.default_config_path())


def test_house_recording_both_on_then_utterances_off(talk, house):
    talk.say("switch on data collection for the whole home")
    talk.say("yes")
    assert talk.last_dialog() == "house.recording.on"
    listener = admin_config(house)["listener"]
    assert listener["record_wakewords"] is True and listener["record_utterances"] is True
    talk.say("stop recording utterances for the whole house")
    assert talk.last_dialog() == "confirm.house.recording.off"
    assert talk.last_data()["what"] == "spoken commands"
    talk.say("yes")
    assert talk.last_dialog() == "house.recording.off"
    listener = admin_config(house)["listener"]
    assert listener["record_wakewords"] is True and listener["record_utterances"] is False
    assert saved_listener() == {"record_wakewords": True, "record_utterances": False}
