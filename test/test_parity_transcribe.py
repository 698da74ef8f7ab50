"""`POST /v1/transcribe?language=` (Selene's STT route, which the Mark II uses;
api-contract §6.1): the audio as the body, `{"transcription": text}` back, or null when
nothing was understood. Same STT service, limits, auth and recording rules as /v1/stt:
real espeak-ng speech, the real pocketsphinx plugin (small vocabulary), the real server.
"""

import pytest
import requests

from audio import missing_tools, silence_wav, speak
from conftest import make_config
from helpers import admin_backend, bearer, pair, restore_identity, serve  # noqa: F401
from speech_model import pocketsphinx_block

pytestmark = [pytest.mark.usefixtures("restore_identity"),
              pytest.mark.skipif(bool(missing_tools()), reason="needs espeak-ng and sox")]
MAX_SECONDS = 5


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module (the plugin loads once), recording utterances."""
    folder = tmp_path_factory.mktemp("transcribe")
    config = make_config(folder / "data")
    config["stt"] = {**pocketsphinx_block(folder / "model"), "max_seconds": MAX_SECONDS}
    config["listener"]["record_utterances"] = True
    with serve(config) as server:
        yield server


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    folder = tmp_path_factory.mktemp("speech")
    return {"hello": speak("hello world", folder),
            "lights": speak("turn on the lights", folder, fmt="wav", rate=44100, channels=2)}


@pytest.fixture
def device(server, tmp_path):
    return pair(server.url, tmp_path / "identity2.json")


def transcribe(server, device, audio: bytes, **params) -> requests.Response:
    """What the Mark II sends: FLAC (or WAV) as the body, the device's bearer token."""
    headers = {**bearer(device.access_token), "Content-Type": "audio/x-flac"}
    return requests.post(f"{server.url}/v1/transcribe", params=params, data=audio,
                         headers=headers, timeout=60)


def test_flac_speech_is_transcribed(server, device, speech):
    response = transcribe(server, device, speech["hello"], language="en-US")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"transcription": "hello world"}


def test_any_wav_and_the_lang_alias(server, device, speech):
    response = transcribe(server, device, speech["lights"], lang="en-us")
    assert response.json() == {"transcription": "turn on the lights"}


def test_nothing_understood_is_null(server, device):
    response = transcribe(server, device, silence_wav(0.01), language="en-us")
    assert response.status_code == 200 and response.json() == {"transcription": None}
    # where /v1/stt answers [""] for the same audio
    assert device.stt_get(silence_wav(0.01)) == [""]


@pytest.mark.parametrize("audio, params, words", [
    (b"not audio at all", {"language": "en-us"}, "audio"),
    (b"", {}, "audio is empty"),
    (silence_wav(MAX_SECONDS + 1), {}, f"longer than the {MAX_SECONDS} s"),
    (None, {"language": "english please"}, "language must be a language tag"),
    (None, {"limit": "many"}, "limit"),
])
def test_bad_requests_are_json_400s(server, device, speech, audio, params, words):
    response = transcribe(server, device, speech["hello"] if audio is None else audio, **params)
    assert response.status_code == 400 and words in response.json()["error"]


def test_only_paired_devices_may_transcribe(server, device, speech):
    anonymous = requests.post(f"{server.url}/v1/transcribe", data=speech["hello"], timeout=30)
    assert anonymous.status_code == 401
    assert anonymous.headers["Content-Type"].startswith("text/plain")
    wrong = requests.post(f"{server.url}/v1/transcribe", data=speech["hello"], timeout=30,
                          headers=bearer("not-a-token"))
    assert wrong.status_code == 401


def test_recorded_by_the_same_rules_as_stt(server, device, speech, tmp_path):
    """Nothing is kept until the device opts in; then the audio is, with its transcript
    and the language the request named."""
    admin = admin_backend(server.url)
    transcribe(server, device, speech["hello"], language="en-us")
    assert admin.db_list_stt_recordings() == []

    assert admin.admin_set_device_info(device.uuid, {"opt_in": True}).status_code == 200
    transcribe(server, device, speech["hello"], language="en-GB")
    [row] = [r for r in admin.db_list_stt_recordings() if r["uuid"] == device.uuid]
    assert (row["transcription"], row["lang"]) == ("hello world", "en-gb")
