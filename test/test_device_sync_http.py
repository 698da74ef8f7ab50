"""The sync agent over HTTP, against the standalone server in another process, as a
device whose backend runs elsewhere uses it: the real skills installed in this venv
(the probe skill), real files, a real bus (FakeBus, the in-process bus of ovos-utils).
Runs on both stacks."""
import json
import os
import time

import pytest
import requests
from ovos_utils.fakebus import FakeBus

from conftest import ADMIN_KEY, free_port, wait_until
from server_process import ServerProcess, raw_pair
from ovos_skill_personal_backend.device import skills
from ovos_skill_personal_backend.device.agent import SyncAgent
from ovos_skill_personal_backend.device.state import StateFile
from ovos_skill_personal_backend.device.transports import HttpTransport

OURS = "ovos-skill-personal-backend.openvoiceos"
PROBE = "skill-sync-probe.test"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


class Backend:
    """The standalone server in a child process, restartable on the same port and data."""

    def __init__(self, tmp_path):
        self.port = free_port()
        self.data = tmp_path / "backend-data"
        self.conf = tmp_path / "backend.conf"
        self.conf.write_text(json.dumps({"server": {"admin_key": ADMIN_KEY}}))
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self) -> "Backend":
        self.process = ServerProcess("--port", str(self.port), "--data-dir", str(self.data),
                                     "--config", str(self.conf)).start()
        return self

    def stop(self) -> None:
        self.process.stop()

    def admin(self, method: str, path: str, **kwargs):
        answer = requests.request(method, f"{self.url}/v1/admin{path}", headers=ADMIN,
                                  timeout=30, **kwargs)
        assert answer.status_code < 400, answer.text
        return answer.json()


class Probe:
    """The probe skill's settings file on this device."""
    path = skills.settings_path(PROBE)

    def write(self, values: dict, mtime=None) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with open(self.path, "w") as f:
            json.dump(values, f)
        if mtime is not None:
            os.utime(self.path, (mtime, mtime))

    def read(self) -> dict:
        with open(self.path) as f:
            return json.load(f)


@pytest.fixture
def backend(tmp_path):
    server = Backend(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def probe():
    probe = Probe()
    probe.write({"greeting": "hello", "volume": 5, "enabled": True, "_secret": "stays here"})
    yield probe
    os.remove(probe.path)


@pytest.fixture
def web_cache(tmp_path, monkeypatch):
    path = tmp_path / "web_cache.json"
    monkeypatch.setenv("MYCROFT_WEB_CACHE", str(path))
    return path


@pytest.fixture
def bus():
    bus = FakeBus()
    bus.received = []
    bus.on("message", lambda m: bus.received.append(json.loads(m)))
    return bus


@pytest.fixture
def device(backend, probe, web_cache, bus, tmp_path):
    login = raw_pair(backend.url)
    transport = HttpTransport(backend.url, "v1", login["uuid"], login["accessToken"])
    agent = SyncAgent(transport, bus, StateFile(str(tmp_path / "state.json")), login["uuid"],
                      skip={OURS}, poll_interval=1.0)
    yield agent
    agent.stop()


def shared(backend) -> dict:
    return backend.admin("GET", f"/skill_settings/{PROBE}")["settings"]


def owner_sets(backend, **values) -> None:
    backend.admin("PUT", f"/skill_settings/{PROBE}", json={"settings": {**shared(backend), **values}})


def changes_sent(bus) -> int:
    """How often the probe was told to reload its settings (as ovos-core tells a skill)."""
    return len([m for m in bus.received if m["type"] == "ovos.skills.settings_changed"
                and m["data"] == {"skill_id": PROBE}])


def test_first_round_sends_installed_skills_definition_and_values(device, backend):
    assert device.run_round(), device.last_error
    view = backend.admin("GET", f"/devices/{device.uuid}")
    assert PROBE in view["skills_installed"] and OURS not in view["skills_installed"]
    record = backend.admin("GET", f"/{device.uuid}/skill_settings/{PROBE}")
    assert record["settings"] == {"greeting": "hello", "volume": 5, "enabled": True}
    fields = [f["name"] for s in record["meta"]["sections"] for f in s["fields"]]
    assert fields == ["greeting", "volume", "enabled"]  # the skill's own settingsmeta.yaml


def test_an_owner_change_reaches_the_skill_within_one_poll(device, backend, probe, bus):
    device.start()
    assert wait_until(lambda: device.last_sync), device.last_error
    began = time.monotonic()
    owner_sets(backend, greeting="hola")
    assert wait_until(lambda: changes_sent(bus), timeout=device.poll_interval + 5)
    delay = time.monotonic() - began
    print(f"owner change reached the device over HTTP in {delay:.2f} s "
          f"(poll interval {device.poll_interval} s)")
    assert changes_sent(bus) == 1
    assert probe.read()["greeting"] == "hola" and probe.read()["_secret"] == "stays here"


def test_unchanged_polls_are_answered_304(device):
    assert device.run_round() and device.run_round()  # the second reads what the first sent
    before = device.transport.not_modified
    assert device.run_round()
    assert device.transport.not_modified - before == 2  # /setting and /skill/sync


def test_device_preferences_become_the_remote_config_layer(device, backend, bus, web_cache):
    assert device.run_round()
    backend.admin("PUT", f"/{device.uuid}/prefs", json={"system_unit": "imperial", "date_format": "MDY"})
    bus.received.clear()
    assert device.run_round()
    assert [m for m in bus.received if m["type"] == "configuration.updated"]
    written = json.loads(web_cache.read_text())
    assert written["system_unit"] == "imperial" and written["date_format"] == "MDY"


def test_a_device_change_is_uploaded_and_private_keys_stay_home(device, backend, probe):
    assert device.run_round()
    probe.write({**probe.read(), "volume": 9})
    assert device.run_round()
    assert shared(backend) == {"greeting": "hello", "volume": 9, "enabled": True}


def test_backend_down_keeps_everything_and_backs_off(device, backend, probe, web_cache):
    assert device.run_round()
    cached = web_cache.read_bytes()
    backend.stop()
    probe.write({**probe.read(), "volume": 2})
    assert not device.run_round() and not device.run_round()
    assert "unreachable" in device.last_error and device.retry_delay() == 4
    assert web_cache.read_bytes() == cached
    assert probe.read()["volume"] == 2
    backend.start()
    assert device.run_round() and device.failures == 0
    assert shared(backend)["volume"] == 2  # what changed meanwhile went up


def test_a_forgotten_device_keeps_its_settings(device, backend, probe, web_cache):
    assert device.run_round()
    cached, values = web_cache.read_bytes(), probe.read()
    backend.admin("DELETE", f"/devices/{device.uuid}")
    assert not device.run_round()
    assert "401" in device.last_error
    assert web_cache.read_bytes() == cached
    assert probe.read() == values


def test_the_newer_change_wins_when_both_sides_changed_one_key(device, backend, probe, bus):
    assert device.run_round()
    # the owner changes it on the backend, then (later) the skill on the offline device
    owner_sets(backend, greeting="from the web")
    probe.write({**probe.read(), "greeting": "from the device"}, mtime=time.time() + 5)
    assert device.run_round()
    assert shared(backend)["greeting"] == "from the device"
    # now the device changed first and the owner later
    probe.write({**probe.read(), "greeting": "device again"}, mtime=time.time() - 60)
    owner_sets(backend, greeting="web again")
    assert device.run_round()
    assert changes_sent(bus) == 1  # told once: the first change went up, not down
    assert probe.read()["greeting"] == "web again" and shared(backend)["greeting"] == "web again"


def test_changes_to_different_keys_on_both_sides_are_both_kept(device, backend, probe):
    assert device.run_round()
    owner_sets(backend, greeting="hola")
    probe.write({**probe.read(), "volume": 11})
    assert device.run_round()
    assert shared(backend) == {"greeting": "hola", "volume": 11, "enabled": True}
    assert probe.read()["greeting"] == "hola" and probe.read()["volume"] == 11


def test_an_uninstalled_skill_is_no_longer_served(device, backend):
    assert device.run_round()
    device.find_skills = lambda: {}  # the probe was uninstalled
    assert device.run_round()
    view = backend.admin("GET", f"/devices/{device.uuid}")
    assert view["skills_installed"] == []
    listed = backend.admin("GET", f"/{device.uuid}/skill_settings/list")
    assert PROBE not in [entry["skill_id"] for entry in listed]
    assert shared(backend)["greeting"] == "hello"  # kept for devices that still have it
