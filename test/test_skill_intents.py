"""Every voice intent, end to end: utterance -> ovos-core intent service (padacioso) ->
the skill -> what it says, and what changed in the device database and mycroft.conf."""
import json
import os
import uuid

import pytest
from ovos_config.locations import find_user_config

from ovos_skill_personal_backend.backend import devices, pairing
from ovos_skill_personal_backend.device import mycroft_conf as device_config
from ovos_skill_personal_backend.backend.services import places
from skill_harness import identity_path, running_device, user_config, write_user_config


@pytest.fixture(scope="module")
def device():
    yield from running_device()


@pytest.fixture
def skill(device):
    return fresh_skill(device)


def fresh_skill(device):
    """The loaded skill, with an empty device database and an unpaired device."""
    skill = device.skill
    for uuid_ in skill.store.devices.keys():
        skill.store.devices.delete(uuid_)
    for code in skill.store.pairings.keys():
        skill.store.pairings.delete(code)
    if os.path.exists(identity_path()):
        os.remove(identity_path())
    skill.state.pop("_device_uuid")
    skill.on_settings_changed()  # as after a restart: no sync agent for the forgotten device
    return skill


@pytest.fixture
def talk(device, skill):
    return device.conversation()


def pair_quietly(skill) -> str:
    """Pair the device the skill runs on without a voice turn (setup for other tests)."""
    login = pairing.pair_directly(skill.store, skill.backend_config)
    device_config.save_identity(login)
    return login["uuid"]


def add_device(skill, name: str) -> dict:
    login = pairing.pair_directly(skill.store, skill.backend_config)
    devices.update(skill.store, login["uuid"], {"name": name})
    return login


# pairing this device --------------------------------------------------------------------

def test_pair_this_device_writes_identity_and_announces(talk, skill):
    talk.say("pair this device")
    assert talk.last_dialog() == "paired"
    with open(identity_path()) as f:
        identity = json.load(f)
    assert identity["expires_at"] > 0 and identity["refresh"]
    assert pairing.authenticate(skill.store, identity["access"]) == identity["uuid"]
    assert talk.last_data()["name"] == skill.store.devices.get(identity["uuid"])["name"]
    paired = talk.emitted("mycroft.paired")
    assert [m.data for m in paired] == [{"uuid": identity["uuid"]}]  # no tokens on the bus

    talk.say("pair this device with my personal backend")
    assert talk.last_dialog() == "already.paired"
    assert len(skill.store.devices.keys()) == 1

    pairing.issue_tokens(skill.store, identity["uuid"])  # rotated elsewhere: identity is stale
    talk.say("register this device")
    assert talk.last_dialog() == "paired"
    assert skill.store.devices.keys() == [identity["uuid"]]  # same record, new tokens
    with open(identity_path()) as f:
        assert pairing.authenticate(skill.store, json.load(f)["access"]) == identity["uuid"]


# location -------------------------------------------------------------------------------

def test_change_location_single_match(talk, skill):
    uuid_ = pair_quietly(skill)
    talk.say("set my location to tokyo")
    assert talk.last_dialog() == "location.changed"
    assert talk.last_data()["place"] == "Tokyo, Tokyo, Japan"
    record = skill.store.devices.get(uuid_)["location"]
    conf = user_config()["location"]
    for location in (record, conf):
        assert location["city"]["name"] == "Tokyo"
        assert location["timezone"]["code"] == "Asia/Tokyo"
        assert round(location["coordinate"]["latitude"]) == 36 or \
            round(location["coordinate"]["latitude"]) == 35
    assert talk.emitted("configuration.updated")


def test_ambiguous_place_asks_which(talk, skill):
    uuid_ = pair_quietly(skill)
    talk.say("i live in paris")
    assert talk.last_dialog() == "which.place"
    assert "Texas" in talk.spoken()[-1].data["utterance"]
    talk.say("the one in texas")
    assert talk.last_dialog() == "location.changed"
    assert talk.last_data()["place"] == "Paris, Texas, United States"
    assert skill.store.devices.get(uuid_)["location"]["city"]["state"]["code"] == "TX"
    assert user_config()["location"]["timezone"]["code"] == "America/Chicago"


def test_no_place_said_asks_where_then_selects_by_position(talk, skill):
    talk.say("change my location")
    assert talk.last_dialog() == "ask.where"
    talk.say("lisbon")
    assert talk.last_dialog() == "which.place"
    talk.say("the first one")
    assert talk.last_dialog() == "location.changed"
    # not paired: only this device's own configuration changes
    assert user_config()["location"]["timezone"]["code"] == "Europe/Lisbon"
    assert skill.store.devices.keys() == []


def test_unclear_choice_is_asked_again_then_cancelled(talk, skill):
    before = user_config().get("location")
    talk.say("set my location to portland")
    talk.say("purple")  # matches no option: asked again
    assert "Portland, Maine" in talk.spoken()[-1].data["utterance"]
    assert talk.spoken()[-1].data["expect_response"]
    talk.say("cancel")
    assert talk.last_dialog() == "cancelled"
    assert user_config().get("location") == before


def test_unknown_place(talk, skill):
    before = user_config().get("location")
    talk.say("set my location to xyzzy")
    assert talk.last_dialog() == "place.not.found"
    assert talk.last_data()["place"] == "xyzzy"
    assert user_config().get("location") == before


def test_broken_device_config_is_left_alone(talk, skill):
    path = find_user_config()
    with open(path) as f:
        good = f.read()
    broken = good[:-5]  # e.g. a hand edit cut short
    with open(path, "w") as f:
        f.write(broken)
    try:
        uuid_ = pair_quietly(skill)
        before = skill.store.devices.get(uuid_)["location"]
        talk.say("set my location to tokyo")
        assert talk.last_dialog() == "config.broken"
        with open(path) as f:
            assert f.read() == broken  # ovos-config would have saved an empty file over it
        assert skill.store.devices.get(uuid_)["location"] == before
    finally:
        with open(path, "w") as f:
            f.write(good)


def test_where_am_i(talk, skill):
    uuid_ = pair_quietly(skill)
    tokyo = devices.normalise_location(places.search("Tokyo", 1)[0])
    devices.set_location(skill.store, uuid_, tokyo)
    talk.say("what is my location")
    assert talk.last_dialog() == "location.is"
    assert talk.last_data()["place"] == "Tokyo, Japan"


def test_where_am_i_unpaired_reads_device_config(talk, skill):
    conf = user_config()
    conf["location"] = devices.normalise_location(places.search("Lisbon", 1)[0])
    write_user_config(conf)
    talk.say("where am i")
    assert talk.last_data()["place"] == "Lisbon, Portugal"


# devices --------------------------------------------------------------------------------

def test_list_devices(talk, skill):
    talk.say("how many devices are paired")
    assert talk.last_dialog() == "no.devices"
    add_device(skill, "Kitchen")
    talk.say("list my devices")
    assert talk.last_dialog() == "one.device"
    assert talk.last_data()["names"] == "Kitchen"
    add_device(skill, "Bedroom")
    talk.say("how many devices are paired")
    assert talk.last_dialog() == "devices.list"
    assert talk.last_data()["count"] == 2
    assert talk.last_data()["names"] == "Kitchen and Bedroom"


def test_forget_device_after_yes(talk, skill):
    login = add_device(skill, "Kitchen")
    code = pairing.request_code(skill.store, skill.backend_config, login["uuid"])["code"]
    talk.say("forget the kitchen device")
    assert talk.last_dialog() == "confirm.forget"
    talk.say("yes")
    assert talk.last_dialog() == "forgot.device"
    assert skill.store.devices.get(login["uuid"]) is None
    assert pairing.authenticate(skill.store, login["accessToken"]) is None
    assert skill.store.pairings.get(code) is None  # no way back through an old session


def test_forget_device_after_no_keeps_it(talk, skill):
    login = add_device(skill, "Kitchen")
    talk.say("unpair kitchen")
    assert talk.last_dialog() == "confirm.forget"
    talk.say("no")
    assert talk.last_dialog() == "kept.device"
    assert pairing.authenticate(skill.store, login["accessToken"]) == login["uuid"]


def test_forget_unknown_or_ambiguous_name(talk, skill):
    talk.say("forget the garage device")
    assert talk.last_dialog() == "no.device.named"
    add_device(skill, "Kitchen")
    add_device(skill, "kitchen")
    talk.say("remove the kitchen device")
    assert talk.last_dialog() == "several.devices.named"
    assert len(skill.store.devices.keys()) == 2


def test_rename_this_device(talk, skill):
    talk.say("rename this device to living room")
    assert talk.last_dialog() == "not.paired"
    uuid_ = pair_quietly(skill)
    talk.say("rename this device to living room")
    assert talk.last_dialog() == "renamed"
    assert skill.store.devices.get(uuid_)["name"] == "Living Room"


def test_backend_address(talk, skill):
    talk.say("what is the backend address")
    assert talk.last_dialog() == "backend.address.local.only"
    assert talk.last_data() == {"host": "127.0.0.1", "port": skill.server.port}


def test_recordings_opt_in_and_out(talk, skill):
    uuid_ = pair_quietly(skill)
    talk.say("start saving my recordings")
    # the backend-wide switches are off by default: the owner is told
    assert talk.last_dialog() == "recordings.on.backend.off"
    assert skill.store.devices.get(uuid_)["opt_in"] is True
    conf = user_config()
    assert conf["opt_in"] is True and conf["listener"]["wake_word_upload"]["disable"] is False
    talk.say("stop saving my recordings")
    assert talk.last_dialog() == "recordings.off"
    assert skill.store.devices.get(uuid_)["opt_in"] is False
    assert user_config()["opt_in"] is False


# approving pairings ---------------------------------------------------------------------

def request(skill) -> str:
    return pairing.request_code(skill.store, skill.backend_config, str(uuid.uuid4()))["code"]


def test_approve_the_only_pending_device(talk, skill):
    talk.say("approve the new device")
    assert talk.last_dialog() == "nothing.pending"
    code = request(skill)
    talk.say("approve the new device")
    assert talk.last_dialog() == "approved"
    assert talk.last_data()["code"] == " ".join(code)  # read back letter by letter
    assert skill.store.pairings.get(code)["status"] == "approved"
