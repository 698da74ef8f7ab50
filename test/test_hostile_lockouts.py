"""Issue 15, items 5, 6 and 14: others must not lock the owner out.

* Requests without any credential (a web page's `no-cors` fetches) are not guesses of
  the admin key; wrong keys from another process on the owner's own address, or from
  many addresses, are throttled without ever refusing the right key.
* A request head dribbled in a byte at a time is cut off after a deadline; many loopback
  addresses together cannot take the connections the owner's device needs.
* Rate windows follow a monotonic clock: a wall-clock step back extends no refusal.
"""
import select
import socket
import threading
import time
import uuid as uuidlib

import pytest

from conftest import ADMIN_KEY
from helpers import pair, restore_identity, serve  # noqa: F401 (restore_identity: a fixture)
from browser import Browser
from ovos_skill_personal_backend.backend import ratelimit, server as server_module
from ovos_skill_personal_backend.backend.errors import TooManyRequests
from ovos_skill_personal_backend.backend.services.mail import PER_HOUR, Mailer

pytestmark = pytest.mark.usefixtures("restore_identity")

ADMIN_URL = "/v1/admin/devices/list"
RIGHT = {"Authorization": f"Bearer {ADMIN_KEY}"}
WRONG = {"Authorization": "Bearer not-the-admin-key-at-all"}


def admin_get(client, headers=None, address="127.0.0.1"):
    return client.get(ADMIN_URL, headers=headers or {}, environ_base={"REMOTE_ADDR": address})


# item 5: the owner locked out by others ------------------------------------------------------

def test_requests_without_a_credential_do_not_lock_out_the_admin_key(client):
    """25 `no-cors` fetches from a page in the owner's browser carry no Authorization
    header (a browser cannot add one without CORS): none of them is a guess."""
    statuses = [admin_get(client, {"Sec-Fetch-Mode": "no-cors"}).status_code for _ in range(25)]
    assert statuses == [401] * 25
    answer = admin_get(client, RIGHT)
    assert answer.status_code == 200 and isinstance(answer.json, list)
    # nor do they use up the budget of real guesses
    limit = ratelimit.LIMITS["admin_key"][0]
    assert [admin_get(client, WRONG).status_code for _ in range(limit)] == [401] * limit


def test_wrong_admin_keys_from_the_owners_address_never_refuse_the_right_key(client):
    """Another local process shares 127.0.0.1 with the owner: its wrong keys are
    throttled (429), the owner's right key from the same address still works."""
    limit, window = ratelimit.LIMITS["admin_key"]
    statuses = [admin_get(client, WRONG).status_code for _ in range(limit + 5)]
    assert statuses == [401] * limit + [429] * 5
    assert admin_get(client, RIGHT).status_code == 200
    refused = admin_get(client, WRONG)
    assert refused.status_code == 429 and refused.json["error"]
    assert 0 < int(refused.headers["Retry-After"]) <= window


def test_wrong_logins_from_another_process_do_not_lock_the_owner_out(client):
    """Five wrong logins on the admin page from another process (its own cookies, the
    same loopback address) then the owner's right key: logged in at once."""
    intruder, owner = Browser(client.application.test_client()), Browser(client)
    for _ in range(5):
        assert intruder.login("not-the-admin-key-at-all").status_code == 401
    refused = intruder.login("still-not-the-admin-key")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    answer = owner.login()
    assert answer.status_code == 302 and answer.headers["Location"] == "/admin/"
    assert owner.get("/admin/").status_code == 200
    assert intruder.login("not-the-admin-key-at-all").status_code == 429  # still throttled


# item 6: several addresses -------------------------------------------------------------------

def test_wrong_admin_keys_from_many_addresses_meet_a_global_budget(client):
    """1,000 wrong keys from 50 addresses (each under its own limit): past the global
    budget every wrong key gets 429; the right key works throughout, from anywhere."""
    addresses = [f"192.0.2.{n}" for n in range(1, 51)]
    statuses = [admin_get(client, WRONG, address).status_code
                for _ in range(1000 // len(addresses)) for address in addresses]
    overall = ratelimit.OVERALL["admin_key"]
    print(f"\n1,000 wrong admin keys from 50 addresses: {statuses.count(401)} answered 401, "
          f"{statuses.count(429)} refused with 429")
    assert statuses == [401] * overall + [429] * (1000 - overall)
    for address in (addresses[0], "192.0.2.200", "127.0.0.1"):
        assert admin_get(client, RIGHT, address).status_code == 200


def closed_by_server(sock: socket.socket, wait: float) -> bool:
    """Whether the server closed `sock` (an EOF or a reset) within `wait` seconds."""
    readable, _, _ = select.select([sock], [], [], wait)
    if not readable:
        return False
    try:
        return sock.recv(1024) == b""
    except OSError:
        return True


def test_a_request_head_dribbled_in_is_cut_off_after_the_deadline(config, monkeypatch):
    """A slowloris sends its headers a byte every 0.5 s: each byte resets waitress's idle
    timeout, so only a deadline on the whole head ends it."""
    monkeypatch.setattr(server_module, "HEAD_TIMEOUT", 2)
    head = b"GET /v1/device/code HTTP/1.1\r\nHost: localhost\r\nX-Padding: " + b"x" * 100
    with serve(config) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            started, closed = time.monotonic(), False
            for byte in head:
                if time.monotonic() - started > 2 + 3:
                    break  # never cut off
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    closed = True
                if closed or closed_by_server(sock, 0.5):
                    closed = True
                    break
            elapsed = time.monotonic() - started
        print(f"\na head dribbled at 2 bytes/s: cut off after {elapsed:.1f} s")
        assert closed and elapsed < 2 + 2
        # a request sent at once is served as before
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET /v1/device/code HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert sock.recv(64).startswith(b"HTTP/1.1 ")


def hold_connections(port: int, addresses, per_address: int):
    """Connections that start a request and never finish it, from each of `addresses`."""
    held = []
    for address in addresses:
        for _ in range(per_address):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10,
                                            source_address=(address, 0))
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            held.append(sock)
    return held


@pytest.mark.parametrize("attackers", [[f"127.0.0.{n}" for n in range(2, 6)], ["127.0.0.1"]],
                         ids=["4-other-loopback-addresses", "the-owners-own-address"])
def test_many_loopback_addresses_cannot_keep_the_owners_device_out(config, tmp_path, attackers):
    """4 loopback addresses x 100 unfinished requests filled the server's 400 connections
    and the owner's device (127.0.0.1, the real client) timed out; loopback is one network
    with its own limit, and a newcomer takes the place of the biggest holder's oldest
    idle connection (its own address's, when that one holds its limit: another local
    process may share 127.0.0.1 with the owner)."""
    with serve(config) as server:
        device = pair(server.url, tmp_path / "identity.json")
        held = hold_connections(server.port, attackers, server_module.CONNECTIONS_PER_ADDRESS)
        try:
            time.sleep(0.5)  # the event loop accepts them all
            answers = []
            for _ in range(5):
                started = time.monotonic()
                thread = threading.Thread(target=lambda: answers.append(device.device_get()),
                                          daemon=True)
                thread.start()
                thread.join(5)
                print(f"device request during the flood: {time.monotonic() - started:.2f} s")
            still_open = sum(not closed_by_server(sock, 0) for sock in held)
            print(f"\n{len(held)} unfinished requests from {attackers}, {still_open} "
                  f"kept open; the device was answered {len(answers)}/5 times")
            assert len(answers) == 5 and all(answer["uuid"] for answer in answers)
            assert still_open <= server_module.CONNECTIONS_PER_NETWORK
        finally:
            for sock in held:
                sock.close()


# item 14: monotonic clocks for windows ---------------------------------------------------------

class SteppedClock:
    """The wall clock stepped back by `back` seconds while `forward` seconds really pass."""

    def __init__(self, monkeypatch):
        self.back = self.forward = 0.0
        wall, monotonic = time.time, time.monotonic
        monkeypatch.setattr(time, "time", lambda: wall() - self.back)
        monkeypatch.setattr(time, "monotonic", lambda: monotonic() + self.forward)


def test_a_clock_step_back_does_not_extend_the_mail_limit(config, monkeypatch):
    """A device that sent its hourly quota may send again an hour later, even when NTP
    stepped the wall clock back by two hours in between."""
    clock, mailer, uuid = SteppedClock(monkeypatch), Mailer(config), str(uuidlib.uuid4())
    for _ in range(PER_HOUR):
        mailer._count(uuid)
    with pytest.raises(TooManyRequests):
        mailer._count(uuid)
    clock.back, clock.forward = 2 * 3600, 3600 + 1
    mailer._count(uuid)  # the hour has passed


def test_a_clock_step_back_does_not_extend_a_lock_out(monkeypatch):
    clock = SteppedClock(monkeypatch)
    throttle = ratelimit.GuessThrottle(per_client=3, overall=100, window=60)
    for _ in range(3):
        throttle.failed("192.0.2.1")
    assert throttle.retry_after("192.0.2.1") > 0
    clock.back, clock.forward = 3600, 61
    assert throttle.retry_after("192.0.2.1") == 0
