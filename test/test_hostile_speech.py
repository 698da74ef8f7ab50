"""Issue 15, item 3: one device must not starve the house through speech-to-text.

Replayed attacks, against the real waitress server, the real pocketsphinx plugin (small
vocabulary: speech_model.py) and the real ovos-backend-client:
* a FLAC bomb: 183 KiB of silence declaring 8 channels at 192 kHz for 119 s, which the
  decoder used to expand to 350 MB per upload (tracemalloc peak 340 MB);
* the largest audio still accepted (8 channels at 96 kHz for 119 s), whose memory must be
  bounded by the duration cap, not by what its header declares;
* one device keeping 16 two-minute WAVs in flight, which took every waitress worker
  thread while another device's settings polls queued behind them until they timed out
  (8 at once: a poll waited 12 s here; 90 s in the issue).
"""
import statistics
import subprocess
import threading
import time
import tracemalloc

import pytest
import requests

from audio import buzz_wav, missing_tools
from conftest import make_config
from helpers import bearer, pair, restore_identity, serve  # noqa: F401
from speech_model import pocketsphinx_block

from ovos_skill_personal_backend.backend.errors import BadRequest
from ovos_skill_personal_backend.backend.services import stt as stt_module
from ovos_skill_personal_backend.backend.services.stt import Admission, EngineBusy

pytestmark = [pytest.mark.usefixtures("restore_identity"),
              pytest.mark.skipif(bool(missing_tools()), reason="needs espeak-ng and sox")]

MB = 1024 * 1024
# 16 kHz 16-bit mono PCM at the default 120 s cap: what a request may legitimately hold
PCM_AT_CAP = stt_module.MAX_SECONDS * stt_module.SAMPLE_RATE * stt_module.SAMPLE_WIDTH
# seconds a settings poll may take while speech is served, beyond the time pocketsphinx
# holds the GIL (it does for a whole utterance: then nothing else in the process runs)
POLL_DEADLINE = 2.0


def silence_flac(path, rate: int, channels: int, seconds: float) -> bytes:
    """Digital silence as FLAC (compresses to almost nothing, whatever it declares)."""
    subprocess.run(["sox", "-D", "-n", "-r", str(rate), "-c", str(channels), "-b", "16",
                    str(path), "trim", "0", str(seconds)], check=True, capture_output=True)
    return path.read_bytes()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile-speech")
    config = make_config(folder / "data")
    config["stt"] = pocketsphinx_block(folder / "model")
    with serve(config) as server:
        yield server


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bombs")
    return {"192k-8ch": silence_flac(folder / "bomb.flac", 192000, 8, 119),
            "96k-8ch": silence_flac(folder / "largest.flac", 96000, 8, 119),
            "10min": silence_flac(folder / "long.flac", 16000, 1, 600)}


def _peak_bytes(action) -> int:
    """The most memory Python (and numpy) held at once while `action` ran, over its start."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        action()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def _upload(url: str, token: str, audio: bytes, timeout: float = 60) -> requests.Response:
    return requests.post(f"{url}/v1/stt", params={"lang": "en-us"}, data=audio,
                         headers=bearer(token), timeout=timeout)


# ------------------------------------------------------------ the FLAC bomb

def test_flac_bomb_is_refused_from_its_header(server, bombs, tmp_path):
    """Before: 200 after expanding 183 KiB into 340 MB (tracemalloc peak). After: a JSON
    400 naming the rate, before a single sample is decoded."""
    device = pair(server.url, tmp_path / "identity2.json")
    assert len(bombs["192k-8ch"]) < 200 * 1024
    answers = []
    peak = _peak_bytes(lambda: answers.append(_upload(server.url, device.access_token,
                                                      bombs["192k-8ch"])))
    assert answers[0].status_code == 400, answers[0].text
    assert "sample rate" in answers[0].json()["error"]
    print(f"\n192 kHz 8-channel FLAC bomb: peak {peak / MB:.1f} MiB")
    assert peak < 4 * MB


def test_audio_declaring_more_than_the_cap_is_refused_before_decoding(bombs):
    """10 minutes declared: refused at once, not after decoding 2 minutes of it."""
    started = time.monotonic()
    peak = _peak_bytes(lambda: pytest.raises(BadRequest, stt_module.decode_audio,
                                             bombs["10min"]).match("longer than"))
    assert time.monotonic() - started < 0.5 and peak < 2 * MB


def test_largest_accepted_audio_decodes_in_memory_bounded_by_the_cap(bombs):
    """8 channels at 96 kHz for 119 s (the most a header may declare and be decoded): the
    decoder downmixes and resamples block by block into a buffer sized by the cap.
    Before: 170 MB; after: about the 16 kHz PCM at the cap, twice (buffer and bytes)."""
    pcms = []
    peak = _peak_bytes(lambda: pcms.append(stt_module.decode_audio(bombs["96k-8ch"])))
    assert len(pcms[0]) == 119 * stt_module.SAMPLE_RATE * stt_module.SAMPLE_WIDTH
    print(f"\n96 kHz 8-channel 119 s FLAC decoded: peak {peak / MB:.1f} MiB")
    assert peak < 2 * PCM_AT_CAP + 4 * MB


def test_upload_of_the_largest_audio_is_bounded_end_to_end(server, bombs, tmp_path):
    device = pair(server.url, tmp_path / "identity2.json")
    answers = []
    peak = _peak_bytes(lambda: answers.append(_upload(server.url, device.access_token,
                                                      bombs["96k-8ch"])))
    assert answers[0].status_code == 200, answers[0].text
    print(f"\n96 kHz 8-channel 119 s FLAC through /v1/stt: peak {peak / MB:.1f} MiB")
    # the decoder, the plugin's own copies (AudioData, WAV framing), the 16 kHz PCM
    assert peak < 6 * PCM_AT_CAP


# ------------------------------------------------------------ starvation

def _poll_latencies(device, stop: threading.Event, latencies: list, errors: list) -> None:
    while not stop.is_set():
        started = time.monotonic()
        try:
            device.device_get_settings()
        except Exception as e:  # a timeout here is the attack succeeding
            errors.append(repr(e))
        latencies.append(time.monotonic() - started)


def _p99(values: list) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98] if len(values) > 1 else values[0]


def _measure_polls(device, seconds: float = 0, until=None) -> tuple:
    """(latencies, errors) of back-to-back settings polls for `seconds` or until `until`."""
    stop, latencies, errors = threading.Event(), [], []
    poller = threading.Thread(target=_poll_latencies, args=(device, stop, latencies, errors))
    poller.start()
    if until is not None:
        until()
    else:
        time.sleep(seconds)
    stop.set()
    poller.join(30)
    return latencies, errors


def _flood(url: str, token: str, audio: bytes, senders: int, seconds: float) -> list:
    """`senders` threads of one device each sending `audio` again as soon as it is answered
    (a quarter second after a refusal) for `seconds`; every answer."""
    answers, barrier = [], threading.Barrier(senders)
    deadline = time.monotonic() + seconds

    def send():
        barrier.wait()
        while time.monotonic() < deadline:
            answer = _upload(url, token, audio, timeout=180)
            answers.append(answer)
            if answer.status_code == 503:
                time.sleep(0.25)

    threads = [threading.Thread(target=send) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    return answers


def test_one_device_uploading_speech_cannot_stall_another_devices_polls(server, tmp_path):
    """One device keeps 16 two-minute WAVs in flight for 10 s (twice the server's worker
    threads) while another paired device polls its settings with the real client (15 s
    timeout). Before: the uploads held every worker thread and queued ahead of the polls,
    which timed out. After: the device has one transcription in progress, its others get
    a JSON 503 with Retry-After at once, and no poll waits for a worker thread. What is
    left is the interpreter lock: pocketsphinx holds the GIL for a whole utterance (a
    Python thread ticking every 5 ms saw a 3.4 s gap during one 2-minute transcription),
    so a poll can still wait for the transcription in progress; bounded here by twice one
    transcription's time, against the whole flood before (20.7 s, and timeouts)."""
    # the talker's token is read once: the client's identity is one process-wide
    # singleton, which reading it for one device would repoint under the other's polls
    token = pair(server.url, tmp_path / "talker.json").access_token
    poller = pair(server.url, tmp_path / "poller.json")
    wav = buzz_wav(120)
    idle, _ = _measure_polls(poller, seconds=1.0)
    started = time.monotonic()
    assert _upload(server.url, token, wav).status_code == 200
    alone = time.monotonic() - started

    answers = []
    loaded, errors = _measure_polls(poller, until=lambda: answers.extend(
        _flood(server.url, token, wav, senders=16, seconds=10)))
    print(f"\none 2-minute WAV alone: {alone:.1f} s; settings poll p99: idle "
          f"{_p99(idle) * 1000:.0f} ms ({len(idle)} polls), while one device floods 16 "
          f"2-minute WAVs at once {_p99(loaded) * 1000:.0f} ms (max {max(loaded) * 1000:.0f} "
          f"ms, {len(loaded)} polls); answers {sorted(a.status_code for a in answers)}")
    assert not errors, errors
    assert max(loaded) < 2 * alone + POLL_DEADLINE
    statuses = {answer.status_code for answer in answers}
    assert statuses == {200, 503}, statuses
    for answer in answers:
        if answer.status_code == 503:
            assert int(answer.headers["Retry-After"]) >= 1
            assert "in progress" in answer.json()["error"]


# ------------------------------------------------------------ the admission rules

def _hold(admission: Admission, client: str, entered: threading.Event,
          release: threading.Event, outcome: list) -> threading.Thread:
    """A thread that takes a slot for `client`, says so, and keeps it until `release`."""
    def run():
        try:
            with admission.slot(client):
                entered.set()
                release.wait(10)
            outcome.append("done")
        except EngineBusy as e:
            outcome.append(e)
            entered.set()
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_admission_bounds_running_waiting_and_per_device():
    admission = Admission(running=2, per_client=1, waiting=1, wait_seconds=5)
    release = threading.Event()
    holders = []
    for client in ("a", "b"):
        entered, outcome = threading.Event(), []
        holders.append((_hold(admission, client, entered, release, outcome), outcome))
        assert entered.wait(5)
    # a device with a transcription in progress is refused at once
    with pytest.raises(EngineBusy, match="in progress") as refused:
        with admission.slot("a"):
            pass
    assert refused.value.status == 503 and refused.value.retry_after >= 1
    # a third device waits for a slot; a fourth finds the queue full
    waiter_in, waiter_outcome = threading.Event(), []
    waiter = _hold(admission, "c", waiter_in, release, waiter_outcome)
    assert not waiter_in.wait(0.3)
    started = time.monotonic()
    with pytest.raises(EngineBusy, match="busy"):
        with admission.slot("d"):
            pass
    assert time.monotonic() - started < 0.2
    release.set()  # the waiter gets a slot when one is freed
    for thread, _ in holders + [(waiter, None)]:
        thread.join(5)
    assert waiter_outcome == ["done"] and all(o == ["done"] for _, o in holders)


def test_a_request_waits_at_most_the_queue_time():
    admission = Admission(running=1, per_client=1, waiting=1, wait_seconds=0.3)
    entered, release, outcome = threading.Event(), threading.Event(), []
    holder = _hold(admission, "a", entered, release, outcome)
    assert entered.wait(5)
    started = time.monotonic()
    with pytest.raises(EngineBusy, match="busy"):
        with admission.slot("b"):
            pass
    assert 0.25 < time.monotonic() - started < 2
    release.set()
    holder.join(5)
    with admission.slot("b"):  # the slot and the queue were given back
        pass
