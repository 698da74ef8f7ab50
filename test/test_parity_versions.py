"""The versions a device reports, whichever way it spells them (api-contract §2.1, §2.5):
ovos-backend-client and mycroft-core send `coreVersion`, `enclosureVersion`, `platform`
and `platform_build`; Selene's records are snake_case, and devices mix both. Activation
(`POST /v1/device/activate`) and `PATCH /v1/device/{uuid}` keep every spelling.
"""
import uuid as uuidlib

import pytest
import requests

from conftest import make_config
from helpers import admin_headers, bearer, pair, raw_pair, restore_identity, serve  # noqa: F401

pytestmark = pytest.mark.usefixtures("restore_identity")

STORED = ("core_version", "enclosure_version", "platform", "platform_build")
SNAKE = {"core_version": "22.8.0", "enclosure_version": "mk2-1.4", "platform": "mycroft_mark_2",
         "platform_build": "b7"}
MIXED = {"coreVersion": "0.10.0", "enclosure_version": "1.0", "platform": "picroft",
         "platformBuild": "b9"}
EXPECTED = {"snake": ("22.8.0", "mk2-1.4", "mycroft_mark_2", "b7"),
            "mixed": ("0.10.0", "1.0", "picroft", "b9")}


def _versions(store, uuid: str) -> tuple:
    device = store.devices.get(uuid)
    return tuple(device[key] for key in STORED)


def _activate(url: str, report: dict) -> requests.Response:
    """Code and activation over plain HTTP, with `report` in the activation body."""
    state = str(uuidlib.uuid4())
    code = requests.get(f"{url}/v1/device/code", params={"state": state}, timeout=10).json()
    return requests.post(f"{url}/v1/device/activate", timeout=10,
                         json={"state": state, "token": code["token"], **report})


def test_the_client_activation_is_stored(live_server, store, tmp_path):
    """`device_activate` sends camelCase but `platform_build`."""
    device = pair(live_server.url, tmp_path / "identity2.json", core_version="2.1.1",
                  platform="ovos-docker", platform_build="b42", enclosure_version="mk1-2.0")
    assert _versions(store, device.uuid) == ("2.1.1", "mk1-2.0", "ovos-docker", "b42")
    assert device.device_get()["coreVersion"] == "2.1.1"


@pytest.mark.parametrize("spelling, report", [("snake", SNAKE), ("mixed", MIXED)])
def test_every_spelling_of_an_activation_is_stored(live_server, store, spelling, report):
    answer = _activate(live_server.url, report)
    assert answer.status_code == 200
    uuid = answer.json()["uuid"]
    assert _versions(store, uuid) == EXPECTED[spelling]
    info = requests.get(f"{live_server.url}/v1/device/{uuid}", timeout=10,
                        headers=bearer(answer.json()["accessToken"])).json()
    core, enclosure, platform, _ = EXPECTED[spelling]
    assert (info["coreVersion"], info["enclosureVersion"], info["platform"]) == \
        (core, enclosure, platform)


def test_the_camel_case_name_wins_when_both_are_sent(live_server, store):
    answer = _activate(live_server.url, {"coreVersion": "camel", "core_version": "snake"})
    assert _versions(store, answer.json()["uuid"])[0] == "camel"


def test_a_waiting_activation_shows_the_owner_any_spelling(tmp_path):
    """In confirm mode the pending pairing lists what the device reported, under the
    names the admin page and client read."""
    config = make_config(tmp_path / "data", pairing="confirm")
    with serve(config) as server:
        assert _activate(server.url, SNAKE).status_code == 403  # waiting for approval
        [waiting] = requests.get(f"{server.url}/v1/admin/pairings", headers=admin_headers(),
                                 timeout=10).json()
    assert waiting["device"] == {"coreVersion": "22.8.0", "enclosureVersion": "mk2-1.4",
                                 "platform": "mycroft_mark_2", "platform_build": "b7"}


@pytest.mark.parametrize("report", [{"core_version": ["1"]}, {"platformBuild": "b" * 201},
                                    {"enclosureVersion": True}])
def test_a_bad_version_refuses_the_activation_in_plain_text(live_server, store, report):
    """A JSON error would be saved by the device as its login (api-contract §2.1)."""
    answer = _activate(live_server.url, report)
    assert answer.status_code == 400
    assert answer.headers["Content-Type"].startswith("text/plain")
    assert "must be a string" in answer.text
    assert len(store.devices) == 0


def test_the_client_version_update_is_stored(live_server, store, tmp_path):
    device = pair(live_server.url, tmp_path / "identity2.json")
    response = device.device_update_version("2.1.1", "ovos-docker", "b42", "mk2-1.0")
    assert response.status_code == 200
    assert _versions(store, device.uuid) == ("2.1.1", "mk2-1.0", "ovos-docker", "b42")


@pytest.mark.parametrize("spelling, report", [("snake", SNAKE), ("mixed", MIXED)])
def test_every_spelling_of_a_version_update_is_stored(live_server, store, spelling, report):
    login = raw_pair(live_server.url)
    response = requests.patch(f"{live_server.url}/v1/device/{login['uuid']}", json=report,
                              headers=bearer(login["accessToken"]), timeout=10)
    assert response.status_code == 200 and response.json()["success"] is True
    assert _versions(store, login["uuid"]) == EXPECTED[spelling]


def test_a_bad_version_update_is_a_json_400(live_server, store):
    login = raw_pair(live_server.url)
    response = requests.patch(f"{live_server.url}/v1/device/{login['uuid']}", timeout=10,
                              json={"platformBuild": {"nested": 1}},
                              headers=bearer(login["accessToken"]))
    assert response.status_code == 400
    assert "platformBuild must be a string" in response.json()["error"]
    assert _versions(store, login["uuid"])[3] == ""
