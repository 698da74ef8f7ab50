"""Authentication and pairing security, over HTTP against the real server.

Device 401s must not be truthy JSON (the client's pairing check is `bool(device_get())`,
api-contract §1.4); refused activations must not be JSON at all (the device would save a
JSON body as its identity, §2.1).
"""
import hashlib
import re
import time
import uuid as uuidlib

import pytest
import requests
from ovos_backend_client.backends import BackendType
from ovos_backend_client.identity import IdentityManager
from ovos_backend_client.pairing import check_remote_pairing

from conftest import ADMIN_KEY, make_config
from helpers import (admin_headers, bearer, data_files, device_backend, identity_file,
                     is_truthy_json, pair, pairing_manager, raw_pair, read_identity,
                     restore_identity, serve)  # noqa: F401 (restore_identity: a fixture)
from ovos_skill_personal_backend.backend import config as config_module
from ovos_skill_personal_backend.backend import pairing

pytestmark = pytest.mark.usefixtures("restore_identity")

DEVICE_GETS = ["", "/setting", "/location", "/subscription", "/skill", "/skill/settings",
               "/voice?arch=arm"]


def _get(url: str, headers: dict = None) -> requests.Response:
    return requests.get(url, headers=headers or {}, timeout=10)


def _assert_not_paired(response: requests.Response) -> None:
    assert response.status_code == 401
    assert not is_truthy_json(response), response.text
    assert response.headers["Content-Type"].startswith("text/plain")


def _assert_refused_activation(response: requests.Response) -> None:
    assert 400 <= response.status_code < 500
    with pytest.raises(ValueError):
        response.json()


@pytest.fixture
def device(live_server) -> dict:
    return raw_pair(live_server.url)


def _device_url(server, login, path="") -> str:
    return f"{server.url}/v1/device/{login['uuid']}{path}"


# device tokens ------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [
    {}, {"Authorization": ""}, {"Authorization": "Bearer "}, {"Authorization": "Bearer"},
    {"Authorization": "Bearer forged-token-0123456789abcdef"},
    {"Authorization": "Basic dXNlcjpwYXNz"},
], ids=["absent", "empty", "empty-bearer", "bare-bearer", "forged", "basic"])
def test_bad_tokens_are_refused(live_server, device, headers):
    for path in DEVICE_GETS:
        _assert_not_paired(_get(_device_url(live_server, device, path), headers))


def test_token_without_bearer_prefix_is_refused(live_server, device):
    """The old backend stripped "Bearer " with str.replace, so a bare token passed."""
    _assert_not_paired(_get(_device_url(live_server, device), {"Authorization": device["accessToken"]}))


def test_refresh_token_is_not_an_access_token(live_server, device):
    _assert_not_paired(_get(_device_url(live_server, device), bearer(device["refreshToken"])))


def test_token_of_one_device_on_anothers_path(live_server, device):
    other = raw_pair(live_server.url)
    for path in DEVICE_GETS:
        _assert_not_paired(_get(_device_url(live_server, other, path), bearer(device["accessToken"])))
    response = requests.put(_device_url(live_server, other, "/skill"), headers=bearer(device["accessToken"]),
                            json={"skill_gid": "@x|skill-x.y"}, timeout=10)
    _assert_not_paired(response)


def test_client_with_a_forged_identity_is_not_paired(live_server, device, tmp_path):
    """The real pairing check: uuid present, token forged -> not paired (no exception)."""
    path = tmp_path / "identity2.json"
    with identity_file(path):
        IdentityManager.save({"uuid": device["uuid"], "accessToken": "forged-0123456789",
                              "refreshToken": "forged-0123456789", "expiration": 3600})
    assert check_remote_pairing(True, url=live_server.url, identity_file=str(path),
                                backend_type=BackendType.PERSONAL) is False
    with pytest.raises(ValueError):  # the plain-text 401 is not JSON
        device_backend(live_server.url, path).device_get()


def test_re_pair_revokes_old_tokens(live_server, tmp_path, store):
    """Pairing the same uuid again works (the old backend answered 500) and revokes the old tokens."""
    path = tmp_path / "identity2.json"
    backend = pair(live_server.url, path)
    first = read_identity(path)
    pair(live_server.url, path, state=first["uuid"])
    second = read_identity(path)
    assert second["uuid"] == first["uuid"] and second["access"] != first["access"]
    assert backend.device_get()["uuid"] == first["uuid"]
    _assert_not_paired(_get(f"{live_server.url}/v1/device/{first['uuid']}", bearer(first["access"])))
    assert _get(f"{live_server.url}/v1/auth/token", bearer(first["refresh"])).status_code == 401
    assert len(store.devices) == 1


def test_deleted_device_tokens_are_revoked(live_server, device):
    answer = requests.delete(f"{live_server.url}/v1/admin/devices/{device['uuid']}",
                             headers=admin_headers(), timeout=10)
    assert answer.status_code == 200
    _assert_not_paired(_get(_device_url(live_server, device), bearer(device["accessToken"])))
    _assert_not_paired(_get(f"{live_server.url}/v1/auth/token", bearer(device["refreshToken"])))


def test_replayed_refresh_token_is_refused(live_server, device):
    url = f"{live_server.url}/v1/auth/token"
    rotated = _get(url, bearer(device["refreshToken"]))
    assert rotated.status_code == 200
    _assert_not_paired(_get(url, bearer(device["refreshToken"])))
    # the replay did not disturb the rotated tokens
    assert _get(_device_url(live_server, device), bearer(rotated.json()["accessToken"])).status_code == 200


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer "}, bearer("forged-0123456789")])
def test_refresh_without_a_valid_token(live_server, headers):
    _assert_not_paired(_get(f"{live_server.url}/v1/auth/token", headers))


# activation ---------------------------------------------------------------------------

def _activate(server, **body) -> requests.Response:
    return requests.post(f"{server.url}/v1/device/activate", json=body, timeout=10)


def _code(server, state=None) -> dict:
    state = state or str(uuidlib.uuid4())
    return _get(f"{server.url}/v1/device/code?state={state}").json()


def test_activation_needs_an_issued_code(live_server, store):
    """The old backend created a device for any state/token a caller made up (§8.1.1)."""
    _assert_refused_activation(_activate(live_server, state=str(uuidlib.uuid4()), token="made-up"))
    issued = _code(live_server)
    _assert_refused_activation(_activate(live_server, state=issued["state"], token="wrong-token"))
    _assert_refused_activation(_activate(live_server, state=str(uuidlib.uuid4()), token=issued["token"]))
    _assert_refused_activation(_activate(live_server, state=issued["state"]))
    _assert_refused_activation(_activate(live_server, token=issued["token"]))
    _assert_refused_activation(_activate(live_server, state=issued["state"], token=12345))
    assert len(store.devices) == 0
    assert _activate(live_server, state=issued["state"], token=issued["token"]).json()["uuid"] == issued["state"]


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b'"a string"', b"null"])
def test_activation_with_a_bad_body_is_a_non_json_400(live_server, body):
    response = requests.post(f"{live_server.url}/v1/device/activate", data=body,
                             headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 400
    _assert_refused_activation(response)


@pytest.mark.parametrize("state", ["", "short", "x" * 65, "../../etc/passwd", "a b c d e f g h"])
def test_code_needs_a_sane_state(live_server, state):
    response = _get(f"{live_server.url}/v1/device/code", {}) if not state else \
        requests.get(f"{live_server.url}/v1/device/code", params={"state": state}, timeout=10)
    assert response.status_code == 400 and response.json()["error"]


def test_expired_code_is_refused_and_forgotten(live_server, store):
    issued = _code(live_server)

    def expire(record):
        record["expires_at"] = time.time() - 1
        return record

    store.pairings.update(issued["code"], expire)
    _assert_refused_activation(_activate(live_server, state=issued["state"], token=issued["token"]))
    assert store.pairings.get(issued["code"]) is None
    assert len(store.devices) == 0


def _used_code(server) -> str:
    """A code, activated at once (codes left waiting are bounded per address)."""
    issued = _code(server)
    assert _activate(server, state=issued["state"], token=issued["token"]).status_code == 200
    return issued["code"]


def test_codes_are_six_unambiguous_chars_and_unique(live_server):
    codes = [_used_code(live_server) for _ in range(40)]
    assert all(re.fullmatch(r"[ACEFHJKLMNPRTUVWXY3479]{6}", c) for c in codes), codes
    assert len(set(codes)) == len(codes)


def test_code_is_single_use(live_server, store):
    """Once activated, a code pairs nothing else: not another state, not after the grace
    period a device gets to ask again for the answer it lost (which rotates its tokens)."""
    issued = _code(live_server)
    first = _activate(live_server, state=issued["state"], token=issued["token"]).json()
    _assert_refused_activation(_activate(live_server, state=str(uuidlib.uuid4()), token=issued["token"]))
    again = _activate(live_server, state=issued["state"], token=issued["token"]).json()
    assert again["uuid"] == first["uuid"] and again["accessToken"] != first["accessToken"]
    _assert_not_paired(_get(_device_url(live_server, first), bearer(first["accessToken"])))
    assert len(store.devices) == 1

    def past_grace(record):
        record["activated_at"] = time.time() - pairing.REACTIVATION_GRACE - 1
        return record

    store.pairings.update(issued["code"], past_grace)
    _assert_refused_activation(_activate(live_server, state=issued["state"], token=issued["token"]))
    assert _get(_device_url(live_server, again), bearer(again["accessToken"])).status_code == 200


# confirm mode ---------------------------------------------------------------------------

@pytest.fixture
def confirm_server(tmp_path):
    with serve(make_config(tmp_path / "confirm-data", pairing="confirm")) as server:
        yield server


def _admin_post(server, path) -> requests.Response:
    return requests.post(f"{server.url}/v1/admin/{path}", headers=admin_headers(), timeout=10)


def test_confirm_mode_pending_then_approved(confirm_server):
    issued = _code(confirm_server)
    for _ in range(3):  # pending: non-JSON 403, as often as the device polls
        response = _activate(confirm_server, state=issued["state"], token=issued["token"])
        assert response.status_code == 403
        _assert_refused_activation(response)
    assert _admin_post(confirm_server, f"pairings/{issued['code']}/approve").status_code == 200
    login = _activate(confirm_server, state=issued["state"], token=issued["token"]).json()
    assert login["uuid"] == issued["state"]
    assert _get(_device_url(confirm_server, login), bearer(login["accessToken"])).status_code == 200


def test_confirm_mode_denied_never_activates(confirm_server):
    issued = _code(confirm_server)
    assert _admin_post(confirm_server, f"pairings/{issued['code']}/deny").status_code == 200
    _assert_refused_activation(_activate(confirm_server, state=issued["state"], token=issued["token"]))
    assert _admin_post(confirm_server, f"pairings/{issued['code']}/approve").status_code == 404
    _assert_refused_activation(_activate(confirm_server, state=issued["state"], token=issued["token"]))


def test_confirm_mode_with_the_clients_pairing_manager(confirm_server, tmp_path):
    """PairingManager keeps polling through the 403s and pairs once the owner approves."""
    path = tmp_path / "identity2.json"
    with pairing_manager(path, confirm_server.url) as (manager, shown, paired):
        assert shown.wait(10)
        code = manager.data["code"]
        waiting = requests.get(f"{confirm_server.url}/v1/admin/pairings", headers=admin_headers(),
                               timeout=10).json()
        assert [p["code"] for p in waiting] == [code]
        assert not paired.is_set()
        assert _admin_post(confirm_server, f"pairings/{code}/approve").status_code == 200
        assert paired.wait(20), "PairingManager did not pair after approval"
    assert read_identity(path)["uuid"] == manager.uuid


# secrets at rest ------------------------------------------------------------------------

def test_tokens_are_stored_only_hashed(live_server, store):
    issued = _code(live_server)
    login = _activate(live_server, state=issued["state"], token=issued["token"]).json()
    rotated = _get(f"{live_server.url}/v1/auth/token", bearer(login["refreshToken"])).json()
    blobs = b"".join(open(p, "rb").read() for p in data_files(store.path))
    secrets = [issued["token"], login["accessToken"], login["refreshToken"],
               rotated["accessToken"], rotated["refreshToken"]]
    for secret in secrets:
        assert secret.encode() not in blobs
    # what is there instead: the hashes the server looks tokens up by
    assert hashlib.sha256(rotated["accessToken"].encode()).hexdigest().encode() in blobs


# admin key ----------------------------------------------------------------------------

ADMIN_PATHS = [("GET", "devices/list"), ("GET", "pairings"), ("GET", "config"),
               ("POST", "pairings/AAAAAA/approve"), ("DELETE", "devices/x"),
               ("GET", "00000000-0000-0000-0000-000000000000/pair")]


def test_admin_api_is_off_without_a_key(tmp_path):
    with serve(make_config(tmp_path / "data", admin_key="")) as server:
        for method, path in ADMIN_PATHS:
            for headers in ({}, admin_headers(), admin_headers("")):
                response = requests.request(method, f"{server.url}/v1/admin/{path}", headers=headers,
                                            timeout=10)
                assert response.status_code == 403 and "admin_key" in response.json()["error"]


@pytest.mark.parametrize("headers", [{}, admin_headers("wrong-key-wrong-key-wrong"), admin_headers(""),
                                     {"Authorization": ADMIN_KEY}, admin_headers(ADMIN_KEY + "x")],
                         ids=["absent", "wrong", "empty", "no-bearer", "longer"])
def test_admin_api_wrong_key(live_server, store, headers):
    for method, path in ADMIN_PATHS:
        response = requests.request(method, f"{live_server.url}/v1/admin/{path}", headers=headers, timeout=10)
        assert response.status_code == 401 and response.json()["error"]
    assert len(store.devices) == 0  # the pair route did not run


def test_admin_key_never_in_config_answer(live_server):
    answer = requests.get(f"{live_server.url}/v1/admin/config", headers=admin_headers(), timeout=10)
    assert answer.status_code == 200 and ADMIN_KEY not in answer.text


@pytest.mark.parametrize("key", ["short", "x" * 15])
def test_short_admin_key_is_refused_at_config_load(tmp_path, key):
    with pytest.raises(config_module.ConfigError, match="server.admin_key"):
        make_config(tmp_path, admin_key=key)
