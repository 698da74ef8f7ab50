"""The skill's life in the real ovos-core skill loader: the server it starts and stops,
failures at start, and how it points the device's mycroft.conf at itself and back."""
import gc
import socket
import time

import pytest
import requests
from ovos_bus_client.message import Message

from conftest import free_port
from ovos_skill_personal_backend.device import mycroft_conf as device_config
from skill_harness import SKILL_ID, Device, read_settings, reset_device, user_config, \
    write_settings, write_user_config


@pytest.fixture
def fresh():
    reset_device()
    devices = []
    yield devices
    for device in devices:
        device.stop()
    reset_device()


def serving(port: int, within: float = 10) -> bool:
    """The backend answers on `port` (waiting a little: ovos-workshop's settings file
    watcher may apply a settings change from its own thread)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return requests.get(f"http://127.0.0.1:{port}/", timeout=5).json()["status"] == "ok"
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def boot_dialogs(device: Device) -> list:
    return [(m.data.get("meta") or {}).get("dialog") for m in device.boot if m.msg_type == "speak"]


def change_settings(device: Device, **values) -> None:
    """Edit settings.json as a settings UI would, then tell the skill (as ovos-core's
    file watcher does)."""
    settings = read_settings()
    settings.update(values)
    write_settings(**settings)
    device.croft.bus.emit(Message("ovos.skills.settings_changed", {"skill_id": SKILL_ID}))


def test_load_serve_unload_reload(fresh):
    port = write_settings()["port"]
    device = Device()
    fresh.append(device)
    assert serving(port)
    offline = device.skill.runtime_requirements  # loads and answers without internet
    assert not (offline.internet_before_load or offline.network_before_load
                or offline.requires_internet)
    # first run: the device is pointed at its own backend and services are told
    url = f"http://127.0.0.1:{port}"
    assert user_config()["server"] == {"url": url, "version": "v1", "backend_type": "personal",
                                       "disabled": False}
    assert user_config()["listener"]["wake_word_upload"]["url"] == f"{url}/precise/upload"
    assert "configuration.updated" in [m.msg_type for m in device.boot]

    device.croft.bus.emit(Message("skillmanager.deactivate", {"skill": SKILL_ID}))
    assert device.skill is None or device.skill.server is None
    assert port_free(port) and not serving(port, within=0)

    device.croft.bus.emit(Message("skillmanager.activate", {"skill": SKILL_ID}))
    assert serving(port)
    device.skill.shutdown()
    device.skill.shutdown()  # idempotent
    assert port_free(port)
    device.croft.bus.emit(Message("skillmanager.deactivate", {"skill": SKILL_ID}))
    assert port_free(port)


@pytest.fixture
def busy_port_device(fresh):
    """The skill loaded while another program holds its port (released on teardown)."""
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    write_settings(port=port)
    device = Device()
    fresh.append(device)
    yield device, port, blocker
    blocker.close()


def test_busy_port_is_reported_not_fatal(busy_port_device):
    device, port, _ = busy_port_device
    assert "mycroft.skills.loaded" in [m.msg_type for m in device.boot]
    said = [m for m in device.boot if m.msg_type == "speak"]
    assert said[-1].data["meta"] == {"dialog": "port.busy", "data": {"port": port},
                                     "skill": SKILL_ID}
    assert f"port {port}" in said[-1].data["utterance"].lower()
    assert "server" not in user_config()  # not pointed at a server that is not there

    talk = device.conversation()
    talk.say("what is the backend address")
    assert talk.last_dialog() == "backend.not.running"
    talk.say("list my devices")  # the device database still answers
    assert talk.last_dialog() == "no.devices"


def test_saving_settings_retries_a_busy_port(busy_port_device):
    device, port, blocker = busy_port_device
    blocker.close()
    # what the garbage collector may do at any moment: an instance of the skill unloaded by an
    # earlier test once stored its settings, port included, over this test's (see below)
    gc.collect()
    change_settings(device)
    assert serving(port)
    assert user_config()["server"]["url"] == f"http://127.0.0.1:{port}"


def test_an_unloaded_skill_never_stores_its_settings_again(fresh):
    """ovos-workshop runs default_shutdown() when the loader unloads a skill and again when the
    garbage collector deletes the instance, which stored its settings over the settings.json
    written in between: a settings change then brought back the old port."""
    write_settings()
    device = Device()
    skill = device.skill  # its settings now hold the skill's defaults too
    device.stop()  # the loader runs skill.shutdown() and skill.default_shutdown()
    newer = write_settings()  # the owner edits the settings while the skill is off
    skill.__del__()  # what the garbage collector runs whenever it gets to the old instance
    assert read_settings() == newer


def test_failing_initialize_frees_the_port(fresh, monkeypatch):
    def broken(*args):
        raise RuntimeError("simulated failure after the server started")

    monkeypatch.setattr(device_config, "point_at", broken)
    port = write_settings()["port"]
    device = Device()
    fresh.append(device)
    assert device.skill is None
    assert "mycroft.skills.loading_failure" in [m.msg_type for m in device.boot]
    assert port_free(port)


def test_other_backend_is_kept_unless_the_owner_says_yes(fresh):
    theirs = {"server": {"url": "https://backend.example", "version": "v1"}, "lang": "en-us"}
    write_user_config(theirs)
    port = write_settings()["port"]
    device = Device()
    fresh.append(device)
    assert "other.backend.found" in boot_dialogs(device)
    assert user_config() == theirs

    talk = device.conversation()
    talk.say("use the personal backend")
    assert talk.last_dialog() == "confirm.switch.backend"
    assert talk.last_data() == {"url": "https://backend.example"}
    talk.say("no")
    assert talk.last_dialog() == "left.unchanged"
    assert user_config() == theirs

    talk = device.conversation()
    talk.say("use the personal backend")
    talk.say("yes please")
    assert talk.last_dialog() == "now.using"
    assert user_config()["server"]["url"] == f"http://127.0.0.1:{port}"
    assert talk.emitted("configuration.updated")

    talk.say("stop using the personal backend")
    assert talk.last_dialog() == "stopped.using"
    assert user_config() == theirs  # exactly as before, added keys removed
    assert read_settings()["point_device_here"] is False


def test_point_device_setting_and_port_change(fresh):
    write_user_config({"lang": "en-us"})
    old_port = write_settings()["port"]
    device = Device()
    fresh.append(device)
    assert user_config()["server"]["url"] == f"http://127.0.0.1:{old_port}"

    change_settings(device, point_device_here=False)
    assert user_config() == {"lang": "en-us"}

    new_port = free_port()
    change_settings(device, point_device_here=True, port=new_port)
    assert serving(new_port) and port_free(old_port)
    assert user_config()["server"]["url"] == f"http://127.0.0.1:{new_port}"
    assert user_config()["listener"]["wake_word_upload"]["url"].startswith(
        f"http://127.0.0.1:{new_port}/")
