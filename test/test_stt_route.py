"""`POST /v1/stt` through the real client's `stt_get` (api-contract §6.1): real espeak-ng
speech, the real pocketsphinx plugin (with a small vocabulary: speech_model.py), the
real waitress server. Also the public `/stt` relay and the failure answers.
"""
import os

import pytest
import requests

from audio import missing_tools, speak
from conftest import make_config
from helpers import bearer, pair, restore_identity, serve  # noqa: F401
from speech_model import pocketsphinx_block

pytestmark = [pytest.mark.usefixtures("restore_identity"),
              pytest.mark.skipif(bool(missing_tools()), reason="needs espeak-ng and sox")]


def _config(folder, **server):
    config = make_config(folder / "data", **server)
    config["stt"] = pocketsphinx_block(folder / "model")
    return config


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module: the plugin loads once, as in production."""
    folder = tmp_path_factory.mktemp("stt")
    with serve(_config(folder)) as server:
        yield server


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    folder = tmp_path_factory.mktemp("speech")
    return {"hello": speak("hello world", folder),
            "lights_wav": speak("turn on the lights", folder, fmt="wav", rate=44100, channels=2),
            "yes": speak("yes", folder, speed=200)}


@pytest.fixture
def device(server, tmp_path):
    return pair(server.url, tmp_path / "identity2.json")


def test_stt_get_transcribes_flac(device, speech):
    assert device.stt_get(speech["hello"], "en-us") == ["hello world"]


def test_any_wav_rate_and_channels(device, speech):
    assert device.stt_get(speech["lights_wav"], "en-US", limit=3) == ["turn on the lights"]


def test_short_audio(device, speech):
    """Old bug 21: audio under the 8 KiB write buffer could not be decoded (500)."""
    assert len(speech["yes"]) < 8 * 1024
    assert device.stt_get(speech["yes"]) == ["yes"]


def test_wire_answer_is_json(device, server, speech):
    headers = {**bearer(device.access_token), "Content-Type": "audio/x-flac"}
    response = requests.post(f"{server.url}/v1/stt", params={"lang": "en-us", "limit": 1},
                             data=speech["hello"], headers=headers, timeout=60)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == ["hello world"]


def test_the_plugin_is_built_once_per_app_in_a_worker_process(device, server, speech):
    """The plugin runs in a worker process of its own (services/worker.py), started on
    the first request and kept: later requests reuse the same process and engine."""
    pool = server.app.extensions["personal_backend"]["services"]["stt"].pool
    device.stt_get(speech["hello"])
    [worker] = pool.pids()
    assert worker != os.getpid()
    device.stt_get(speech["lights_wav"])
    assert pool.pids() == [worker] and pool.started == 1


@pytest.mark.parametrize("body", [b"", b"not audio at all", b"RIFF\x10\x00\x00\x00WAVEfmt "])
def test_undecodable_audio_is_a_json_400(device, server, body):
    response = requests.post(f"{server.url}/v1/stt", params={"lang": "en-us"}, data=body,
                             headers=bearer(device.access_token), timeout=30)
    assert response.status_code == 400 and "audio" in response.json()["error"]
    # the client checks the status and raises
    with pytest.raises(RuntimeError, match="400"):
        device.stt_get(body)


@pytest.mark.parametrize("params, word", [({"lang": "english please"}, "lang"),
                                          ({"lang": "en-us", "limit": "many"}, "limit")])
def test_bad_parameters_are_json_400s(device, server, speech, params, word):
    response = requests.post(f"{server.url}/v1/stt", params=params, data=speech["hello"],
                             headers=bearer(device.access_token), timeout=30)
    assert response.status_code == 400 and word in response.json()["error"]


def test_unpaired_callers_are_refused(server, speech):
    response = requests.post(f"{server.url}/v1/stt", data=speech["hello"], timeout=30)
    assert response.status_code == 401
    # the public relay is off by default, and says so in JSON
    public = requests.post(f"{server.url}/stt", data=speech["hello"], timeout=30)
    assert public.status_code == 401 and "public_stt" in public.json()["error"]


def test_missing_plugin_is_a_json_503(tmp_path, speech):
    config = _config(tmp_path)
    config["stt"] = {"module": "ovos-stt-plugin-that-does-not-exist"}
    with serve(config) as server:
        device = pair(server.url, tmp_path / "identity2.json")
        response = requests.post(f"{server.url}/v1/stt", data=speech["hello"], timeout=30,
                                 headers=bearer(device.access_token))
        assert response.status_code == 503
        assert "ovos-stt-plugin-that-does-not-exist" in response.json()["error"]
        with pytest.raises(RuntimeError, match="503"):
            device.stt_get(speech["hello"])


def test_public_relay_when_enabled(tmp_path, speech):
    """`server.public_stt`: the old open `/stt`, answered as ovos-stt-plugin-server
    clients read it (the transcript as plain text); nothing is recorded."""
    config = _config(tmp_path, public_stt=True)
    config["listener"]["record_utterances"] = True
    with serve(config) as server:
        response = requests.post(f"{server.url}/stt", params={"lang": "en-us"},
                                 data=speech["lights_wav"], timeout=60,
                                 headers={"Content-Type": "audio/wav"})
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        assert response.text == "turn on the lights"
        bad = requests.post(f"{server.url}/stt", data=b"junk", timeout=30)
        assert bad.status_code == 400 and bad.json()["error"]
    assert not (tmp_path / "data" / "recordings").exists()
