"""mycroft-core 20.2 posts wake-word samples to `listener.wake_word_upload.url`
(`POST /precise/upload`) as multipart with NO credentials (api-contract §6.6).

While the owner records wake words (`listener.record_wakewords`), such an upload is
taken from this machine (loopback: the device the backend runs on), and from the network
only when the owner sets `listener.accept_anonymous_wakewords`; it is attributed to the
paired device its metadata names (`accountId`, the `user.uuid` of GET /device), whose
opt-in then applies. Anything else is a 401. The live server is on 127.0.0.1; other
addresses go through Flask's test client with another REMOTE_ADDR.
"""
import io
import json

import pytest
import requests

from audio import missing_tools, speak
from conftest import make_config
from helpers import bearer, opt_in, raw_pair, serve
from ovos_skill_personal_backend.backend import config as config_module
from ovos_skill_personal_backend.backend import create_app, datasets, devices, pairing
from ovos_skill_personal_backend.backend.store import Store

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason="needs espeak-ng and sox")
LAN = "192.168.1.50"


@pytest.fixture(scope="module")
def wake(tmp_path_factory):
    """A spoken wake word as the WAV bytes mycroft-core uploads."""
    return speak("hey mycroft", tmp_path_factory.mktemp("speech"), fmt="wav")


def _config(tmp_path, record: bool = True, **listener) -> dict:
    config = make_config(tmp_path / "data")
    config["listener"].update(record_wakewords=record, **listener)
    return config


def metadata(account: str) -> dict:
    """mycroft-core 20.2's `_compile_metadata`."""
    return {"name": "hey-mycroft", "engine": "0f4df281688583e010c26831abdc2222",
            "time": "1592192357852", "sessionId": "7d18e208", "accountId": account,
            "model": "5223842df0cdee5bca3eff8eac1b67fc"}


def mycroft_core_upload(url: str, wav: bytes, meta: dict) -> requests.Response:
    """mycroft-core 20.2's upload, as it sends it: a file-like object per part, no headers."""
    return requests.post(f"{url}/precise/upload", timeout=10,
                         files={"audio": io.BytesIO(wav), "metadata": io.StringIO(json.dumps(meta))})


def from_address(app, address: str, wav: bytes, meta: dict):
    """The same upload from another address, through Flask's test client."""
    return app.test_client().post(
        "/precise/upload", environ_base={"REMOTE_ADDR": address}, content_type="multipart/form-data",
        data={"audio": (io.BytesIO(wav), "audio"), "metadata": (io.BytesIO(json.dumps(meta).encode()),
                                                                "metadata")})


def stored(data_path) -> list:
    return datasets.list_all(Store(str(data_path)), datasets.WAKEWORDS)


def paired_device(store: Store, config: dict, opted_in: bool = True) -> str:
    uuid = pairing.pair_directly(store, config)["uuid"]
    devices.update(store, uuid, {"opt_in": opted_in})
    return uuid


# from this machine ------------------------------------------------------------------------

def test_a_sample_from_this_machine_is_kept_as_the_device_s_it_names(tmp_path, wake):
    with serve(_config(tmp_path)) as server:
        login = raw_pair(server.url)
        opt_in(server.url, login["uuid"])
        answer = mycroft_core_upload(server.url, wake, metadata(login["uuid"]))
    assert answer.status_code == 200
    assert answer.json()["saved"] is True and answer.json()["uuid"] == login["uuid"]
    [row] = stored(tmp_path / "data")
    assert (row["uuid"], row["transcription"]) == (login["uuid"], "hey mycroft")
    assert row["meta"]["accountId"] == login["uuid"]
    assert datasets.read_audio(Store(str(tmp_path / "data")), datasets.WAKEWORDS,
                               row["recording_id"])[0] == wake


def test_a_sample_naming_no_paired_device_is_kept_as_nobody_s(tmp_path, wake):
    """mycroft-core sends accountId "0" when it could not read its device."""
    with serve(_config(tmp_path)) as server:
        answer = mycroft_core_upload(server.url, wake, metadata("0"))
    assert answer.status_code == 200 and answer.json()["saved"] is True
    assert [row["uuid"] for row in stored(tmp_path / "data")] == [""]


def test_the_named_device_s_opt_in_applies(tmp_path, wake):
    with serve(_config(tmp_path)) as server:
        login = raw_pair(server.url)
        answer = mycroft_core_upload(server.url, wake, metadata(login["uuid"]))
    assert answer.status_code == 200
    assert answer.json() == {"success": True, "saved": False, "sent_to_mycroft": False,
                             "uuid": login["uuid"], "recording_id": None}
    assert stored(tmp_path / "data") == []


def test_nothing_is_taken_without_a_token_while_recording_is_off(tmp_path, wake):
    with serve(_config(tmp_path, record=False)) as server:
        login = raw_pair(server.url)
        answer = mycroft_core_upload(server.url, wake, metadata(login["uuid"]))
        # with its token the device is answered as before: accepted, not kept
        with_token = requests.post(f"{server.url}/precise/upload", headers=bearer(login["accessToken"]),
                                   files={"audio": ("audio", wake)}, timeout=10)
    assert answer.status_code == 401
    assert answer.headers["Content-Type"].startswith("text/plain")
    assert "listener.record_wakewords" in answer.text
    assert with_token.status_code == 200 and with_token.json()["saved"] is False
    assert stored(tmp_path / "data") == []


def test_a_wrong_token_is_refused_even_from_this_machine(tmp_path, wake):
    """A device that sends a token is judged by it, never taken as anonymous."""
    with serve(_config(tmp_path)) as server:
        answer = requests.post(f"{server.url}/precise/upload", headers=bearer("revoked-token"),
                               files={"audio": ("audio", wake)}, timeout=10)
    assert answer.status_code == 401 and "device not paired" in answer.text
    assert stored(tmp_path / "data") == []


def test_a_broken_anonymous_upload_is_a_json_400(tmp_path, wake):
    with serve(_config(tmp_path)) as server:
        no_audio = requests.post(f"{server.url}/precise/upload", timeout=10,
                                 files={"metadata": io.StringIO(json.dumps(metadata("0")))})
        bad_meta = requests.post(f"{server.url}/precise/upload", timeout=10,
                                 files={"audio": io.BytesIO(wake), "metadata": io.StringIO("{")})
    assert no_audio.status_code == 400 and "no audio" in no_audio.json()["error"]
    assert bad_meta.status_code == 400 and "metadata" in bad_meta.json()["error"]


@pytest.mark.parametrize("address", ["::1", "::ffff:127.0.0.1", "127.0.0.2"])
def test_every_loopback_address_is_this_machine(tmp_path, wake, address):
    config = _config(tmp_path)
    app = create_app(config, Store(config["data_path"]))
    answer = from_address(app, address, wake, metadata("0"))
    assert answer.status_code == 200 and answer.json["saved"] is True


# from the network ---------------------------------------------------------------------------

def test_from_the_network_only_when_the_owner_allows_it(tmp_path, wake):
    config = _config(tmp_path)
    store = Store(config["data_path"])
    uuid = paired_device(store, config)
    app = create_app(config, store)

    refused = from_address(app, LAN, wake, metadata(uuid))
    assert refused.status_code == 401 and refused.mimetype == "text/plain"
    assert "listener.accept_anonymous_wakewords" in refused.get_data(as_text=True)
    assert stored(tmp_path / "data") == []

    config["listener"]["accept_anonymous_wakewords"] = True
    taken = from_address(app, LAN, wake, metadata(uuid))
    assert taken.status_code == 200 and taken.json["uuid"] == uuid and taken.json["saved"]
    assert [row["uuid"] for row in stored(tmp_path / "data")] == [uuid]


def test_the_owner_s_allowance_does_not_bypass_the_recording_switch(tmp_path, wake):
    config = _config(tmp_path, record=False, accept_anonymous_wakewords=True)
    store = Store(config["data_path"])
    app = create_app(config, store)
    answer = from_address(app, LAN, wake, metadata(paired_device(store, config)))
    assert answer.status_code == 401 and b"listener.record_wakewords" in answer.data


def test_the_allowance_is_a_checked_config_key(tmp_path):
    assert config_module.load(str(tmp_path / "none.conf"))["listener"][
        "accept_anonymous_wakewords"] is False
    with pytest.raises(config_module.ConfigError, match="listener.accept_anonymous_wakewords"):
        config_module.load(str(tmp_path / "none.conf"),
                           {"listener": {"accept_anonymous_wakewords": "yes"}})
