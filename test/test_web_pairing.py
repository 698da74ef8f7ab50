"""Devices waiting to pair, as the owner sees them on the dashboard: what each told us,
when it last asked, abandoned requests leaving the list, and a denial the device is
told about and the owner can take back. The device side is the real API (Flask's test
client, then a real server with ovos-backend-client's own PairingManager)."""
import re
import time
import uuid as uuidlib

import pytest

from browser import Browser
from conftest import make_config, wait_until
from helpers import pairing_manager, read_identity, restore_identity, serve  # noqa: F401 (restore_identity: a fixture)
from ovos_skill_personal_backend.backend import create_app, pairing, ratelimit
from ovos_skill_personal_backend.backend.store import Store

DEVICE_ADDRESS = "192.0.2.41"
REPORT = {"coreVersion": "2.1.1", "platform": "raspberrypi-ovos", "platform_build": "7",
          "enclosureVersion": "unknown"}


@pytest.fixture
def app(config, store, tmp_path):
    config["server"]["pairing"] = "confirm"
    return create_app(config, store, config_path=str(tmp_path / "ovos_backend.conf"))


@pytest.fixture
def admin(client):
    browser = Browser(client)
    assert browser.login().status_code == 302
    return browser


class Device:
    """A device asking to pair through the API, from DEVICE_ADDRESS."""

    def __init__(self, client):
        self.client = client
        self.state = str(uuidlib.uuid4())
        answer = client.get("/v1/device/code", query_string={"state": self.state, "packaging": "ovos-installer"},
                            environ_base={"REMOTE_ADDR": DEVICE_ADDRESS})
        assert answer.status_code == 200
        self.code, self.token = answer.json["code"], answer.json["token"]

    def activate(self, **report):
        return self.client.post("/v1/device/activate", environ_base={"REMOTE_ADDR": DEVICE_ADDRESS},
                                json={"state": self.state, "token": self.token, **report})


def _row(admin, row_id: str) -> str:
    """The dashboard's list entry `row_id` ("" when the dashboard does not show it)."""
    html = admin.get("/admin/").get_data(as_text=True)
    found = re.search(rf'<li class="row" id="{row_id}">(.*?)</li>\s*(?:</ul>|<li class="row")', html, re.S)
    return re.sub(r"\s+", " ", found.group(1)) if found else ""


def _age(store, code: str, seconds: float) -> None:
    """Make the device's last poll `seconds` old."""
    record = store.pairings.get(code)
    record["seen_at"] = time.time() - seconds
    store.pairings.put(code, record)


def test_a_waiting_device_is_described_by_what_it_told_us(admin, client):
    device = Device(client)
    row = _row(admin, f"pending-{device.code}")
    assert "has not said what it is yet" in row and "packaging ovos-installer" in row
    assert f"address {DEVICE_ADDRESS}" in row and "last checked just now" in row

    answer = device.activate(**REPORT)  # its first poll says what it is
    assert answer.status_code == 403 and "waiting for the owner" in answer.get_data(as_text=True)
    row = _row(admin, f"pending-{device.code}")
    assert "platform raspberrypi-ovos, core 2.1.1, packaging ovos-installer" in row
    assert f"address {DEVICE_ADDRESS}" in row


def test_the_admin_api_lists_the_same_details_without_secrets(client, admin, config):
    device = Device(client)
    device.activate(**REPORT)
    listed = client.get("/v1/admin/pairings", headers={"Authorization": f"Bearer {config['server']['admin_key']}"}).json
    assert [(p["code"], p["address"], p["packaging"], p["device"]["platform"]) for p in listed] == \
        [(device.code, DEVICE_ADDRESS, "ovos-installer", "raspberrypi-ovos")]
    assert device.token not in str(listed) and device.state not in str(listed)


def test_polls_are_noted_but_not_written_every_five_seconds(client, store):
    device = Device(client)
    device.activate(**REPORT)
    first = store.pairings.get(device.code)["seen_at"]
    device.activate(**REPORT)  # the same news a moment later: no write
    assert store.pairings.get(device.code)["seen_at"] == first
    device.activate(**{**REPORT, "coreVersion": "2.1.2"})  # news: written at once
    assert store.pairings.get(device.code)["device"]["coreVersion"] == "2.1.2"
    _age(store, device.code, pairing.POLL_NOTE_EVERY + 1)
    device.activate(**{**REPORT, "coreVersion": "2.1.2"})
    assert time.time() - store.pairings.get(device.code)["seen_at"] < 5


def test_abandoned_requests_leave_the_waiting_list_and_come_back_with_a_poll(admin, client, store):
    gone, polling = Device(client), Device(client)
    _age(store, gone.code, pairing.ABANDONED_AFTER + 1)
    _age(store, polling.code, pairing.ABANDONED_AFTER - 60)
    assert admin.get("/admin/pending.json").json == {"codes": [polling.code]}
    assert _row(admin, f"pending-{gone.code}") == ""
    assert "last checked 9 minutes ago" in _row(admin, f"pending-{polling.code}")
    gone.activate(**REPORT)  # it was only away for a while
    assert admin.get("/admin/pending.json").json == {"codes": [gone.code, polling.code]}


def test_a_denied_device_is_told_so_every_time_it_asks(admin, client):
    device = Device(client)
    response = admin.post(f"/admin/pairings/{device.code}/deny")
    assert response.status_code == 302
    assert f"Code {device.code} denied" in admin.get(response.headers["Location"]).get_data(as_text=True)
    # as often as the device polls (more than the failed-activation limit): the same clear
    # plain-text refusal, never JSON (the device would save it as its login), never a 429
    for _ in range(ratelimit.LIMITS["activation"][0] + 3):
        answer = device.activate(**REPORT)
        assert answer.status_code == 403 and answer.mimetype == "text/plain"
        assert answer.get_data(as_text=True) == pairing.DENIED.format(code=device.code)
    assert "denied code" in pairing.DENIED and "Start pairing again" in pairing.DENIED
    # it left the waiting list, and is listed as denied, still described
    assert admin.get("/admin/pending.json").json == {"codes": []}
    assert _row(admin, f"pending-{device.code}") == ""
    assert "platform raspberrypi-ovos" in _row(admin, f"denied-{device.code}")
    # a denied code cannot be approved (or denied again) without undoing the denial first
    assert admin.post(f"/admin/pairings/{device.code}/approve").status_code == 404
    assert admin.post(f"/admin/pairings/{device.code}/deny").status_code == 404


def test_a_denial_can_be_undone_then_the_device_pairs(admin, client):
    device = Device(client)
    admin.post(f"/admin/pairings/{device.code}/deny")
    response = admin.post(f"/admin/pairings/{device.code}/undeny")
    assert response.status_code == 302
    assert "waiting for your approval again" in admin.get(response.headers["Location"]).get_data(as_text=True)
    assert _row(admin, f"denied-{device.code}") == "" and _row(admin, f"pending-{device.code}")
    assert "waiting for the owner" in device.activate(**REPORT).get_data(as_text=True)
    admin.post(f"/admin/pairings/{device.code}/approve")
    login = device.activate(**REPORT)
    assert login.status_code == 200 and login.json["uuid"] == device.state


def test_only_a_live_denial_can_be_undone(admin, client, store):
    waiting, expired = Device(client), Device(client)
    assert admin.post(f"/admin/pairings/{waiting.code}/undeny").status_code == 404  # never denied
    admin.post(f"/admin/pairings/{expired.code}/deny")
    record = store.pairings.get(expired.code)
    record["expires_at"] = time.time() - 1
    store.pairings.put(expired.code, record)
    response = admin.post(f"/admin/pairings/{expired.code}/undeny")
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert f"no denied pairing with code {expired.code}" in response.get_data(as_text=True)
    assert _row(admin, f"denied-{expired.code}") == ""


def test_the_clients_pairing_manager_keeps_polling_through_a_denial_and_pairs_after_undo(tmp_path):
    """ovos-backend-client's PairingManager with the real server: a denial is a non-JSON 4xx,
    so it neither saves a login nor starts over with a new code; after the owner undoes the
    denial and approves, the same session pairs."""
    config = make_config(tmp_path / "data", pairing="confirm")
    store = Store(config["data_path"])
    identity = tmp_path / "identity2.json"
    with serve(config, store) as server, pairing_manager(identity, server.url) as (manager, shown, paired):
        assert shown.wait(10)
        code = manager.data["code"]
        pairing.deny(store, code)
        refused = store.pairings.get(code)["seen_at"]
        _age(store, code, pairing.POLL_NOTE_EVERY + 1)  # the next poll is written down
        assert wait_until(lambda: store.pairings.get(code)["seen_at"] > refused)
        assert not paired.is_set() and manager.data and manager.data["code"] == code
        assert not identity.exists()
        pairing.undeny(store, code)
        pairing.approve(store, code)
        assert paired.wait(20), "PairingManager did not pair after the denial was undone"
    assert read_identity(identity)["uuid"] == manager.uuid


pytestmark = pytest.mark.usefixtures("restore_identity")
