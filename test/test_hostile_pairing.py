"""A stranger flooding /device/code (issue 15, item 2): thousands of codes from one
address and from many, each once a file kept for a day, every one announced by voice in
confirm mode, the dashboard growing to megabytes and a small disk filling up.

Replayed against the live waitress server (one real address, 127.0.0.1) and through the
app with made-up peer addresses (`REMOTE_ADDR`), while the owner's device, paired with
ovos-backend-client, keeps reading and writing."""
import os
import threading
import time
import uuid as uuidlib
from typing import List

import pytest
import requests

from browser import Browser
from conftest import make_config, wait_until
from helpers import activate, device_backend, request_code, restore_identity  # noqa: F401 (a fixture)
from ovos_skill_personal_backend.backend import create_app, pairing
from ovos_skill_personal_backend.backend.server import BackendServer
from ovos_skill_personal_backend.backend.store import Store

pytestmark = pytest.mark.usefixtures("restore_identity")

FLOOD = 2000  # code requests from the one real address
ADDRESSES = [f"198.51.100.{n}" for n in range(1, 41)]  # made-up peers, 50 requests each
ANNOUNCE_EVERY = 1  # seconds, so that the folded announcement comes within the test
RECORD_BYTES = 8192  # a record and its .bak, a 4 KiB block each


@pytest.fixture
def config(tmp_path):
    return make_config(tmp_path / "data", pairing="confirm", pairing_announce_seconds=ANNOUNCE_EVERY)


@pytest.fixture
def announced() -> List[dict]:
    return []


@pytest.fixture
def app(config, store, announced, tmp_path):
    return create_app(config, store, on_pairing_requested=announced.append,
                      config_path=str(tmp_path / "backend.conf"))


@pytest.fixture
def server(app):
    server = BackendServer(app, "127.0.0.1", 0).start()
    yield server
    server.stop()


@pytest.fixture
def owner_device(server, store, tmp_path):
    """The owner's device, paired through a code the owner approved, with the real client."""
    backend = device_backend(server.url, tmp_path / "identity2.json")
    data = request_code(backend)
    pairing.approve(store, data["code"])
    activate(backend, data)
    assert backend.device_get()["uuid"] == data["state"]
    return backend


def _pairings_on_disk(config) -> tuple:
    """(files, bytes allocated) under data_path/pairings."""
    folder = os.path.join(config["data_path"], "pairings")
    stats = [os.stat(os.path.join(folder, name)) for name in os.listdir(folder)]
    return len(stats), sum(s.st_blocks * 512 for s in stats)


def _dashboard_bytes(client) -> int:
    browser = Browser(client)
    assert browser.login().status_code == 302
    return len(browser.get("/admin/").get_data())


def _flood_one_address(url: str) -> List[requests.Response]:
    with requests.Session() as session:
        return [session.get(f"{url}/v1/device/code", params={"state": str(uuidlib.uuid4())}, timeout=30)
                for _ in range(FLOOD)]


def _flood_many_addresses(client) -> list:
    return [client.get("/v1/device/code", query_string={"state": str(uuidlib.uuid4())},
                       environ_base={"REMOTE_ADDR": address})
            for address in ADDRESSES for _ in range(50)]


class OwnerDevice(threading.Thread):
    """Reads and writes as the owner's device does, until told to stop; keeps every failure."""

    def __init__(self, backend):
        super().__init__(daemon=True)
        self.backend, self.stop, self.rounds, self.failures = backend, threading.Event(), 0, []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                assert self.backend.device_get()["uuid"] == self.backend.uuid
                written = self.backend.device_update_version(f"2.1.{self.rounds}", "ovos-docker", "b1", "none")
                assert written.status_code == 200, written.text
                self.rounds += 1
            except Exception as e:  # any failure is the finding
                self.failures.append(repr(e)[:300])
            time.sleep(0.02)


def test_a_code_flood_is_bounded_and_the_owner_keeps_working(server, client, config, store,
                                                            owner_device, announced):
    server_config = config["server"]
    dashboard_before = _dashboard_bytes(client)
    owner = OwnerDevice(owner_device)
    owner.start()
    started = time.monotonic()
    try:
        answers = _flood_one_address(server.url)
        forged = _flood_many_addresses(client)
    finally:
        owner.stop.set()
        owner.join(30)
    elapsed = time.monotonic() - started
    files, used = _pairings_on_disk(config)
    dashboard_after = _dashboard_bytes(client)
    issued = [a for a in answers if a.status_code == 200] + [a for a in forged if a.status_code == 200]
    print(f"\n{FLOOD} + {len(forged)} code requests in {elapsed:.1f} s: {len(issued)} codes issued; "
          f"pairings on disk: {files} files, {used} bytes; dashboard {dashboard_before} -> "
          f"{dashboard_after} bytes; {len(announced)} announcements; owner device: "
          f"{owner.rounds} read+write rounds, {len(owner.failures)} failures")

    # the owner's device never noticed
    assert not owner.failures, owner.failures[:3]
    assert owner.rounds > 0 and owner_device.device_get()["coreVersion"].startswith("2.1.")
    # issued codes bounded per address and in all; the rest refused, JSON, with a Retry-After
    from_here = sum(1 for a in answers if a.status_code == 200)
    assert from_here == server_config["max_pending_codes_per_address"]
    assert len(issued) == server_config["max_pending_codes"]  # the owner's code is activated
    for refused, body in ((answers[-1], answers[-1].json()), (forged[-1], forged[-1].json)):
        assert refused.status_code == 429 and "error" in body
        assert 0 < int(refused.headers["Retry-After"]) <= server_config["code_idle_minutes"] * 60
    # disk and dashboard bounded by the bound, not by the flood
    bound = server_config["max_pending_codes"] + 1
    assert files <= 2 * bound and used <= bound * RECORD_BYTES
    assert dashboard_after - dashboard_before <= server_config["max_pending_codes"] * 1024
    # at most one announcement per interval; folded ones say how many wait
    assert len(announced) <= elapsed / ANNOUNCE_EVERY + 2
    assert wait_until(lambda: sum(a["count"] for a in announced) == len(issued) + 1)  # + the owner's
    assert announced[-1]["count"] > 1


def test_issued_codes_keep_working_when_the_bound_is_reached(client, config, store):
    """A flood that fills the bound does not cost the devices already waiting their code."""
    waiting = request_code_as(client, "192.0.2.7")
    for n in range(config["server"]["max_pending_codes"]):
        request_code_as(client, f"203.0.113.{n % 250}", check=False)
    assert request_code_as(client, "192.0.2.8", check=False).status_code == 429
    pairing.approve(store, waiting.json["code"])
    answer = client.post("/v1/device/activate", environ_base={"REMOTE_ADDR": "192.0.2.7"},
                         json={"state": waiting.json["state"], "token": waiting.json["token"]})
    assert answer.status_code == 200 and answer.json["uuid"] == waiting.json["state"]


def test_the_same_device_asking_again_gets_the_same_code(client, store, announced):
    state = str(uuidlib.uuid4())
    first = request_code_as(client, "192.0.2.9", state)
    again = request_code_as(client, "192.0.2.9", state)
    assert again.json["code"] == first.json["code"] and len(store.pairings) == 1
    assert len(announced) == 1  # asking again announces nothing new
    # the latest token is the one that activates; the previous one is spent
    pairing.approve(store, first.json["code"])
    assert _activate(client, state, first.json["token"]).status_code == 404
    assert _activate(client, state, again.json["token"]).json["uuid"] == state
    # the same state from another address is another request, not a way to take over this one
    other = request_code_as(client, "192.0.2.10", state)
    assert other.json["code"] != first.json["code"]


def test_a_code_nobody_asks_about_is_forgotten_but_a_polled_one_waits_for_the_owner(client, config, store):
    idle = config["server"]["code_idle_minutes"] * 60
    forgotten = request_code_as(client, "192.0.2.11")
    polled = request_code_as(client, "192.0.2.12")
    _age(store, forgotten.json["code"], created=idle + 1, seen=idle + 1)
    # issued an hour ago, still polled by its device: it waits as long as the owner needs
    _age(store, polled.json["code"], created=3600, seen=pairing.POLL_NOTE_EVERY + 1)
    assert _activate(client, polled.json["state"], polled.json["token"], "192.0.2.12").status_code == 403
    assert [p["code"] for p in pairing.pending(store)] == [polled.json["code"]]
    pairing.approve(store, polled.json["code"])
    assert _activate(client, polled.json["state"], polled.json["token"], "192.0.2.12").status_code == 200
    answer = _activate(client, forgotten.json["state"], forgotten.json["token"], "192.0.2.11")
    assert answer.status_code == 404 and "expired" in answer.get_data(as_text=True)


def test_forgotten_codes_free_the_bound(client, config, store):
    bound = config["server"]["max_pending_codes_per_address"]
    codes = [request_code_as(client, "192.0.2.13").json["code"] for _ in range(bound)]
    refused = request_code_as(client, "192.0.2.13", check=False)
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= config["server"]["code_idle_minutes"] * 60
    idle = config["server"]["code_idle_minutes"] * 60
    _age(store, codes[0], created=idle + 1, seen=idle + 1)
    assert request_code_as(client, "192.0.2.13").status_code == 200


def test_the_skill_says_how_many_devices_asked_together():
    """What the owner hears for a folded announcement (the backend's `count`)."""
    from skill_harness import Device, reset_device, write_settings
    reset_device()
    write_settings(pairing="confirm")
    device = Device()
    try:
        start = len(device.log)
        device.skill.announce_pairing({"code": "ACE347", "count": 3})
        spoken = device.wait_for_message(lambda m: m.msg_type == "speak", start)
        assert spoken.data["meta"]["dialog"] == "pairing.requested.several"
        assert spoken.data["utterance"].startswith("3 devices") and "A C E 3 4 7" in spoken.data["utterance"]
    finally:
        device.stop()
        reset_device()


def test_pairing_limits_are_validated(tmp_path):
    from ovos_skill_personal_backend.backend.config import ConfigError
    for key in ("code_idle_minutes", "max_pending_codes", "max_pending_codes_per_address",
                "pairing_announce_seconds"):
        with pytest.raises(ConfigError, match=f"server.{key}"):
            make_config(tmp_path / "data", **{key: 0})


def request_code_as(client, address: str, state: str = "", check: bool = True):
    answer = client.get("/v1/device/code", query_string={"state": state or str(uuidlib.uuid4())},
                        environ_base={"REMOTE_ADDR": address})
    assert answer.status_code == 200 or not check, answer.get_data(as_text=True)
    return answer


def _activate(client, state: str, token: str, address: str = "192.0.2.9"):
    return client.post("/v1/device/activate", environ_base={"REMOTE_ADDR": address},
                       json={"state": state, "token": token})


def _age(store: Store, code: str, created: float, seen: float) -> None:
    """Make a pairing `created` seconds old, its device last heard of `seen` seconds ago."""
    now = time.time()
    store.pairings.update(code, lambda p: {**p, "created_at": now - created, "seen_at": now - seen})

