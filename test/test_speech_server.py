"""The household speech server, driven by OVOS's REAL stock speech plugins.

`ovos-tts-plugin-server` and `ovos-stt-plugin-server` are what an OVOS device runs by
default; configured with a paired device's speech URL they speak and listen through
this backend: our TTS (espeak-ng through its OPM plugin) -> WAV -> our STT (pocketsphinx
with a small vocabulary, speech_model.py) gives the words back. The engines run in
worker processes; the tests stop (SIGSTOP) and kill (SIGKILL) those real processes to
see what devices get while an engine is busy, hung or dead.
"""
import contextlib
import io
import os
import signal
import time

import pytest
import requests
import soundfile
from ovos_plugin_manager.utils.audio import AudioData
from ovos_stt_plugin_server import OVOSHTTPServerSTT
from ovos_tts_plugin_server import OVOSServerTTS

from audio import missing_tools
from conftest import make_config
from helpers import bearer, pair, restore_identity, serve  # noqa: F401
from speech_model import pocketsphinx_block
from ovos_skill_personal_backend.backend import config as config_module
from ovos_skill_personal_backend.backend import pairing

pytestmark = [pytest.mark.usefixtures("restore_identity"),
              pytest.mark.skipif(bool(missing_tools()), reason="needs espeak-ng and sox")]


def _config(folder, **speech):
    config = make_config(folder / "data")
    config["stt"] = pocketsphinx_block(folder / "model")
    config["speech"].update(speech)
    return config


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module: each engine loads once in its worker, as in production."""
    with serve(_config(tmp_path_factory.mktemp("speech"))) as server:
        yield server


def speech_url(server_url: str, device) -> str:
    response = requests.post(f"{server_url}/v1/device/{device.uuid}/speech",
                             headers=bearer(device.access_token), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["url"]


@pytest.fixture
def device(server, tmp_path):
    return pair(server.url, tmp_path / "identity2.json")


@pytest.fixture
def url(server, device):
    return speech_url(server.url, device)


def synthesize(url: str, text: str, tmp_path) -> bytes:
    """`text` spoken by the stock TTS plugin, configured as a device would be."""
    tts = OVOSServerTTS(config={"host": url, "v2": True, "lang": "en-us", "tts_timeout": 30})
    path = tmp_path / "spoken.wav"
    tts.get_tts(text, str(path))
    return path.read_bytes()


def transcribe(url: str, wav: bytes) -> str:
    """What the stock STT plugin hears in `wav`, configured as a device would be."""
    samples, rate = soundfile.read(io.BytesIO(wav), dtype="int16")
    stt = OVOSHTTPServerSTT(config={"url": f"{url}/stt", "lang": "en-us", "timeout": 60})
    return stt.execute(AudioData(samples.tobytes(), rate, 2), "en-us")


def tts_status(server) -> dict:
    return server.app.extensions["personal_backend"]["services"]["tts"].status()


def test_round_trip_through_the_stock_plugins(url, tmp_path):
    wav = synthesize(url, "turn on the lights", tmp_path)
    assert wav[:4] == b"RIFF" and len(wav) > 10000
    assert transcribe(url, wav) == "turn on the lights"


def test_a_cached_phrase_is_the_same_audio_without_the_engine(server, url, tmp_path):
    first = synthesize(url, "what is the weather like today", tmp_path)
    synthesized = tts_status(server)["synthesized"]
    again = synthesize(url, "what is the weather like today", tmp_path)
    assert again == first
    assert tts_status(server)["synthesized"] == synthesized  # the engine was not called
    other = requests.get(f"{url}/v2/synthesize", params={"utterance": "what is the weather like today",
                                                          "lang": "en-gb"}, timeout=30)
    assert other.status_code == 200 and tts_status(server)["synthesized"] == synthesized + 1


def test_the_v1_path_and_status_answer_as_ovos_tts_server(url):
    response = requests.get(f"{url}/synthesize/good morning", params={"lang": "en-us"}, timeout=30)
    assert response.status_code == 200 and response.headers["Content-Type"] == "audio/wav"
    assert response.content[:4] == b"RIFF"
    status = requests.get(f"{url}/status", timeout=10).json()
    assert status["status"] == "ok" and status["plugin"] == "ovos-tts-plugin-espeakng"
    assert status["default_lang"] == "en-us" and "en-us" in status["langs"]
    assert status["stt"]["plugin"] == "ovos-stt-plugin-pocketsphinx"


def test_wrong_and_revoked_speech_urls_are_refused(server, device, url, tmp_path):
    wav = synthesize(url, "yes", tmp_path)
    wrong = url[:-4] + ("aaaa" if not url.endswith("aaaa") else "bbbb")
    for route, kwargs in ((f"{wrong}/stt", {"data": wav}), (f"{wrong}/v2/synthesize", {})):
        method = requests.post if route.endswith("/stt") else requests.get
        response = method(route, params={"utterance": "yes"}, timeout=10, **kwargs)
        assert response.status_code == 401 and "speech URL" in response.json()["error"]
    # a new URL replaces the old one
    newer = speech_url(server.url, device)
    assert requests.get(f"{url}/status", timeout=10).status_code == 401
    assert requests.get(f"{newer}/status", timeout=10).status_code == 200
    # token refreshes keep it; revoking ends it
    pairing.issue_tokens(server.app.extensions["personal_backend"]["store"], device.uuid)
    assert requests.get(f"{newer}/status", timeout=10).status_code == 200
    pairing.unpair(server.app.extensions["personal_backend"]["store"], device.uuid)
    assert requests.get(f"{newer}/status", timeout=10).status_code == 401


def test_a_device_revokes_its_own_url(server, device, url):
    response = requests.delete(f"{server.url}/v1/device/{device.uuid}/speech",
                               headers=bearer(device.access_token), timeout=10)
    assert response.json() == {"revoked": True}
    assert requests.get(f"{url}/status", timeout=10).status_code == 401


def test_the_url_is_never_in_the_store_or_the_log(server, device, caplog):
    store_path = server.app.extensions["personal_backend"]["config"]["data_path"]
    url = speech_url(server.url, device)
    requests.get(f"{url}/v2/synthesize", params={"utterance": "hello world"}, timeout=30)
    secret = url.rsplit("/", 1)[1]
    for folder, _, files in os.walk(store_path):
        for name in files:
            with open(os.path.join(folder, name), "rb") as f:
                assert secret.encode() not in f.read(), name
    assert secret not in caplog.text


def test_guessing_speech_urls_is_throttled(tmp_path):
    with serve(_config(tmp_path)) as server:  # its own: other tests' refusals count too
        device = pair(server.url, tmp_path / "id.json")
        answers = [requests.get(f"{server.url}/speech/guess{n}/status", timeout=10).status_code
                   for n in range(25)]
        assert answers[:20] == [401] * 20 and set(answers[20:]) == {429}
        # the right URL is never refused
        url = speech_url(server.url, device)
        assert requests.get(f"{url}/status", timeout=10).status_code == 200


def test_strangers_are_refused_unless_the_owner_opens_it(server, tmp_path):
    anonymous = requests.get(f"{server.url}/v2/synthesize", params={"utterance": "hello"}, timeout=10)
    assert anonymous.status_code == 401 and "speech.anonymous" in anonymous.json()["error"]
    assert requests.post(f"{server.url}/stt", data=b"RIFF", timeout=10).status_code == 401
    with serve(_config(tmp_path, anonymous="loopback")) as local:
        wav = synthesize(local.url, "hello world", tmp_path)
        assert transcribe(local.url, wav) == "hello world"


@pytest.mark.parametrize("params, word", [
    ({}, "utterance"), ({"utterance": " "}, "utterance"), ({"utterance": "x" * 501}, "500"),
    ({"utterance": "hi", "lang": "english"}, "lang"), ({"utterance": "hi", "voice": "a b"}, "voice")])
def test_bad_tts_requests_are_json_400s(url, params, word):
    response = requests.get(f"{url}/v2/synthesize", params=params, timeout=10)
    assert response.status_code == 400 and word in response.json()["error"]


def test_bad_stt_requests_are_json_400s(url):
    response = requests.post(f"{url}/stt", data=b"not audio", timeout=30)
    assert response.status_code == 400 and "audio" in response.json()["error"]
    response = requests.post(f"{url}/lang_detect", params={"valid_langs": "en-us,<script>"},
                             data=b"x", timeout=10)
    assert response.status_code == 400 and "valid_langs" in response.json()["error"]


# ---------------------------------------------------------------- busy, hung, dead engines

@contextlib.contextmanager
def stopped(pid: int):
    """The worker process frozen for the block (a real hang, as a stuck engine would be)."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def _in_background(function):
    import threading
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("value", function()), daemon=True)
    thread.start()
    return thread, result


def _stt_pool(server):
    return server.app.extensions["personal_backend"]["services"]["stt"].pool


def test_a_full_queue_answers_503_with_retry_after(tmp_path):
    config = _config(tmp_path)
    config["stt"].update(max_concurrent=1, max_queued=0, max_per_device=1)
    with serve(config) as server:
        first, second = (pair(server.url, tmp_path / f"id{n}.json") for n in (1, 2))
        urls = [speech_url(server.url, d) for d in (first, second)]
        wav = requests.get(f"{urls[0]}/v2/synthesize", params={"utterance": "yes"}, timeout=30).content
        assert transcribe(urls[0], wav) == "yes"  # the STT worker is up
        [pid] = _stt_pool(server).pids()
        with stopped(pid):
            thread, result = _in_background(lambda: requests.post(f"{urls[0]}/stt", data=wav, timeout=30))
            time.sleep(0.5)
            busy = requests.post(f"{urls[1]}/stt", data=wav, timeout=10)
            assert busy.status_code == 503 and int(busy.headers["Retry-After"]) >= 1
            assert "busy" in busy.json()["error"]
            # polls are answered meanwhile
            assert requests.get(f"{server.url}/v1/device/{second.uuid}",
                                headers=bearer(second.access_token), timeout=5).status_code == 200
        thread.join(30)
        assert result["value"].status_code == 200 and result["value"].text == "yes"


def test_a_dead_or_hung_worker_fails_one_request_and_the_next_succeeds(tmp_path):
    config = _config(tmp_path)
    config["stt"]["timeout_seconds"] = 3.0
    with serve(config) as server:
        device = pair(server.url, tmp_path / "id.json")
        url = speech_url(server.url, device)
        wav = requests.get(f"{url}/v2/synthesize", params={"utterance": "hello world"}, timeout=30).content
        assert transcribe(url, wav) == "hello world"
        pool = _stt_pool(server)
        [pid] = pool.pids()
        # killed mid-request
        with stopped(pid):
            thread, result = _in_background(lambda: requests.post(f"{url}/stt", data=wav, timeout=30))
            time.sleep(0.5)
            os.kill(pid, signal.SIGKILL)
        thread.join(30)
        dead = result["value"]
        assert dead.status_code == 503 and "stopped unexpectedly" in dead.json()["error"]
        assert transcribe(url, wav) == "hello world"
        [restarted] = pool.pids()
        assert restarted != pid and pool.started == 2
        # hung: the timeout stops it
        with stopped(restarted):
            started = time.monotonic()
            hung = requests.post(f"{url}/stt", data=wav, timeout=30)
            assert time.monotonic() - started < 10
        assert hung.status_code == 503 and "longer than 3 s" in hung.json()["error"]
        assert transcribe(url, wav) == "hello world" and pool.started == 3


def test_workers_end_with_the_server(tmp_path):
    with serve(_config(tmp_path)) as server:
        device = pair(server.url, tmp_path / "id.json")
        url = speech_url(server.url, device)
        requests.get(f"{url}/v2/synthesize", params={"utterance": "yes"}, timeout=30)
        pids = server.app.extensions["personal_backend"]["services"]["tts"].pool.pids()
        assert len(pids) == 1
    for _ in range(50):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pids[0], os.WNOHANG)
        if not os.path.exists(f"/proc/{pids[0]}"):
            break
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{pids[0]}")


# ---------------------------------------------------------------- offloading

def test_speech_offloaded_to_another_server_through_the_stock_plugins(tmp_path):
    """The backend's own stt/tts blocks name the stock plugins pointing at a second
    server (as one would at a GPU box running ovos-stt-http-server / ovos-tts-server)."""
    with serve(_config(tmp_path / "big")) as big:
        upstream_device = pair(big.url, tmp_path / "big.json")
        upstream = speech_url(big.url, upstream_device)
        config = make_config(tmp_path / "small" / "data")
        config["stt"] = {"module": "ovos-stt-plugin-server",
                         "ovos-stt-plugin-server": {"url": f"{upstream}/stt", "timeout": 60}}
        config["tts"] = {**config["tts"], "module": "ovos-tts-plugin-server",
                         "ovos-tts-plugin-server": {"host": upstream, "v2": True,
                                                    "tts_timeout": 60}}
        with serve(config) as small:
            device = pair(small.url, tmp_path / "small.json")
            url = speech_url(small.url, device)
            wav = synthesize(url, "open the door", tmp_path)
            assert transcribe(url, wav) == "open the door"
            assert tts_status(big)["synthesized"] == 1  # the big server did the work


def test_speech_config_is_validated(tmp_path):
    for change, word in ((("tts", "max_chars", 0), "tts.max_chars"),
                         (("tts", "max_concurrent", 3), "at most"),
                         (("speech", "anonymous", "everyone"), "speech.anonymous"),
                         (("stt", "timeout_seconds", 0), "stt.timeout_seconds")):
        config = make_config(tmp_path / "data")
        block, key, value = change
        config[block][key] = value
        with pytest.raises(config_module.ConfigError, match=word.replace(".", r"\.")):
            config_module.validate(config)
