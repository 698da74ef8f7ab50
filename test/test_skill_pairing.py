"""Voice and HTTP together: what the skill does by voice, the real ovos-backend-client
sees over HTTP, with the identity and the mycroft.conf the skill wrote."""
import uuid

import pytest
import requests
from ovos_backend_client.api import DeviceApi
from ovos_backend_client.identity import IdentityManager

from skill_harness import Device, reset_device, user_config, write_settings


@pytest.fixture
def device():
    reset_device()
    write_settings(pairing="confirm")
    device = Device()
    yield device
    device.stop()
    reset_device()


def client_from_device_config() -> DeviceApi:
    """The client as ovos-core builds it: URL and version from this device's mycroft.conf,
    tokens from its identity2.json."""
    server = user_config()["server"]
    assert server["backend_type"] == "personal"
    IdentityManager.load()  # read identity2.json afresh, as a process started now would
    return DeviceApi(url=server["url"], version=server["version"])


def test_device_paired_by_voice_uses_the_http_api(device):
    talk = device.conversation()
    talk.say("pair this device")
    assert talk.last_dialog() == "paired"
    api = client_from_device_config()
    info = api.get()
    assert info["uuid"] == device.skill.this_device()

    talk.say("rename this device to kitchen")
    talk.say("change my location to tokyo")
    assert api.get()["name"] == "Kitchen"
    assert api.get_location()["timezone"]["code"] == "Asia/Tokyo"
    assert api.get_settings()["location"]["city"]["name"] == "Tokyo"

    talk.say("forget this device")
    assert talk.last_dialog() == "confirm.forget"
    talk.say("yes")
    assert talk.last_dialog() == "forgot.device"
    with pytest.raises(ValueError):  # a plain-text 401: the client no longer counts as paired
        api.get()


def test_pairing_request_is_announced_and_approved_by_voice(device):
    other = DeviceApi(url=f"http://127.0.0.1:{device.skill.server.port}")
    state = str(uuid.uuid4())
    start = len(device.log)
    code = other.get_code(state)
    announced = device.wait_for_message(
        lambda m: m.msg_type == "speak" and m.data["meta"]["dialog"] == "pairing.requested", start)
    assert announced is not None
    assert announced.data["meta"]["data"] == {"code": " ".join(code["code"])}  # spelled out
    with pytest.raises(requests.HTTPError):  # waiting for the owner: no login yet
        other.activate(state, code["token"])

    talk = device.conversation()
    talk.say("approve the new device")
    assert talk.last_dialog() == "approved"
    login = other.activate(state, code["token"])
    assert login["uuid"] == state and login["accessToken"]
    assert device.skill.store.devices.get(state) is not None
