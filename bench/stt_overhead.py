"""STT overhead: what the backend adds to a transcription over calling the plugin directly.

    python bench/stt_overhead.py                  # 30 runs, the bundled pocketsphinx model
    python bench/stt_overhead.py -n 50 --small    # tiny vocabulary: fast plugin, clear overhead

The same espeak-ng utterance (16 kHz FLAC, what devices upload) is transcribed N times
three ways: `SpeechToText.transcribe` in-process; the real client's `stt_get` against
the real waitress server on 127.0.0.1; and `stt_get` again with utterance recording on
(the device opted in), which adds storing the audio and its record. The three ways take
turns within each round, so a load change on a shared machine hits them alike; the
overhead figures are medians of the per-round differences. Prints one JSON line per
way (milliseconds) and one with the overheads.

Needs espeak-ng and sox. Every path (data, identity file) lives in a temp folder.
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

SANDBOX = tempfile.mkdtemp(prefix="stt-bench-")
for _var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_DIRS"):
    os.environ[_var] = os.path.join(SANDBOX, _var.lower())  # before any OVOS import
tempfile.tempdir = SANDBOX
TEST_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "test")
sys.path.insert(0, TEST_DIR)

from audio import speak  # noqa: E402
from speech_model import pocketsphinx_block  # noqa: E402
from ovos_backend_client.backends.personal import PersonalBackend  # noqa: E402
from ovos_skill_personal_backend.backend import config as backend_config  # noqa: E402
from ovos_skill_personal_backend.backend import create_app, pairing  # noqa: E402
from ovos_skill_personal_backend.backend.server import BackendServer  # noqa: E402
from ovos_skill_personal_backend.backend.services.stt import SpeechToText  # noqa: E402
from ovos_skill_personal_backend.backend.store import Store  # noqa: E402

TEXT = "turn on the lights"


def summary(name: str, seconds: list) -> dict:
    ms = sorted(s * 1000 for s in seconds)
    return {"way": name, "runs": len(ms), "median_ms": round(statistics.median(ms), 2),
            "mean_ms": round(statistics.fmean(ms), 2),
            "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 2),
            "min_ms": round(ms[0], 2), "max_ms": round(ms[-1], 2)}


def rounds(calls: list, runs: int) -> list:
    """Seconds per call per round: [[call 0, call 1, ...], ...]; one warm-up round first
    (plugin load, first connection)."""
    for call in calls:
        call()
    times = []
    for _ in range(runs):
        row = []
        for call in calls:
            started = time.perf_counter()
            call()
            row.append(time.perf_counter() - started)
        times.append(row)
    return times


def median_ms(values) -> float:
    return round(statistics.median(values) * 1000, 2)


def device_client(store: Store, config: dict, server: BackendServer,
                  opt_in: bool) -> PersonalBackend:
    login = pairing.pair_directly(store, config, None)
    store.devices.update(login["uuid"], lambda d: {**d, "opt_in": opt_in})
    path = os.path.join(SANDBOX, f"identity-{login['uuid']}.json")
    with open(path, "w") as f:
        json.dump({"uuid": login["uuid"], "access": login["accessToken"],
                   "refresh": login["refreshToken"], "expires_at": -1}, f)
    return PersonalBackend(server.url, identity_file=path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--runs", type=int, default=30)
    parser.add_argument("--small", action="store_true",
                        help="a tiny vocabulary (fast, exact) instead of the bundled model")
    args = parser.parse_args()

    stt_block = pocketsphinx_block(os.path.join(SANDBOX, "model")) if args.small \
        else {"module": "ovos-stt-plugin-pocketsphinx"}
    config = backend_config.load(os.path.join(SANDBOX, "none.conf"), {
        "data_path": os.path.join(SANDBOX, "data"), "server": {"port": 0},
        "stt": stt_block, "listener": {"record_utterances": True}})
    audio = speak(TEXT, SANDBOX)

    direct = SpeechToText(stt_block)
    store = Store(config["data_path"])
    server = BackendServer(create_app(config, store), "127.0.0.1", 0).start()
    try:
        plain, recorded = (device_client(store, config, server, opt_in) for opt_in in (False, True))
        times = rounds([lambda: direct.transcribe(audio, "en-us"),
                        lambda: plain.stt_get(audio, "en-us"),
                        lambda: recorded.stt_get(audio, "en-us")], args.runs)
    finally:
        server.stop()
    print(json.dumps({"audio_bytes": len(audio), "transcript": direct.transcribe(audio, "en-us"),
                      "model": "small" if args.small else "bundled", "runs": args.runs}))
    for column, name in enumerate(("direct SpeechToText.transcribe", "HTTP stt_get",
                                   "HTTP stt_get, recording on")):
        print(json.dumps(summary(name, [row[column] for row in times])))
    print(json.dumps({
        "overhead_median_ms": median_ms([row[1] - row[0] for row in times]),
        "overhead_with_recording_median_ms": median_ms([row[2] - row[0] for row in times]),
        "recording_cost_median_ms": median_ms([row[2] - row[1] for row in times]),
        "recordings_stored": len(store.utterances)}))


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(SANDBOX, ignore_errors=True)
