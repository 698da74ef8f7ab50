"""Household speech: what the speech server costs, and what it costs everything else.

    python bench/speech_load.py                 # 3 rounds of 8 s per phase
    python bench/speech_load.py --rounds 5 --seconds 10

One real waitress server on 127.0.0.1 with the default engines (pocketsphinx with its
bundled model, espeak-ng), in one run, printing JSON lines:

1. **Polls under speech load.** 4 devices poll `GET /v1/device/{uuid}` back to back while,
   in turn (rounds rotate the order): nothing else runs (idle); 8 devices send long
   utterances (~20 s of speech) to `/speech/<secret>/stt`, the engine in its worker process
   (what the backend does); the same 8 run the same plugin inside the serving process
   (what it did before the worker, for contrast). p50/p99 of the polls and their rate.
2. **TTS**: the plugin called in-process, a cache miss and a cache hit through the stock
   plugin's route; the real-time factor of the default engines (seconds of work per
   second of audio).

The time the backend adds to an STT request over the plugin in-process is
`bench/stt_overhead.py`'s figure. Needs espeak-ng and sox; every file lives in a temp folder.
"""
import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import threading
import time

SANDBOX = tempfile.mkdtemp(prefix="speech-bench-")
for _var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_DIRS"):
    os.environ[_var] = os.path.join(SANDBOX, _var.lower())  # before any OVOS import
os.environ.setdefault("OVOS_DEFAULT_LOG_LEVEL", "ERROR")
tempfile.tempdir = SANDBOX
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "test"))

import requests  # noqa: E402
import soundfile  # noqa: E402

from audio import speak  # noqa: E402
from stt_overhead import summary  # noqa: E402
from ovos_skill_personal_backend.backend import config as backend_config  # noqa: E402
from ovos_skill_personal_backend.backend import create_app, pairing, speech_access  # noqa: E402
from ovos_skill_personal_backend.backend.server import BackendServer  # noqa: E402
from ovos_skill_personal_backend.backend.services.stt import SpeechToText  # noqa: E402
from ovos_skill_personal_backend.backend.services.tts import TextToSpeech  # noqa: E402

POLLERS, TALKERS = 4, 8
PARAGRAPH = ("set a timer for ten minutes and then tell me the weather for tomorrow morning in "
             "Lisbon, remind me to call my sister at six, play some quiet music in the kitchen, "
             "turn off the lights in the living room and lock the front door before we go to bed")


def start_server() -> tuple:
    config = backend_config.load(os.path.join(SANDBOX, "none.conf"),
                                 {"data_path": os.path.join(SANDBOX, "data"), "server": {"port": 0}})
    app = create_app(config)
    server = BackendServer(app, "127.0.0.1", 0).start()
    return server, app.extensions["personal_backend"]["store"], config


def paired(store, config, count: int) -> list:
    devices = []
    for _ in range(count):
        login = pairing.pair_directly(store, config)
        devices.append((login["uuid"], login["accessToken"]))
    return devices


def poll_phase(url: str, pollers: list, seconds: float, load=None) -> list:
    """Latencies of back-to-back device polls for `seconds`, with `load()` running in
    TALKERS threads meanwhile (each loops until the phase ends)."""
    stop = threading.Event()
    latencies: list = []
    lock = threading.Lock()

    def poll(uuid, token):
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        mine = []
        while not stop.is_set():
            started = time.perf_counter()
            session.get(f"{url}/v1/device/{uuid}", timeout=60)
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    def talk(n):
        while not stop.is_set():
            load(n)

    threads = [threading.Thread(target=poll, args=p) for p in pollers]
    if load is not None:
        threads += [threading.Thread(target=talk, args=(n,)) for n in range(TALKERS)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return latencies


def poll_figures(name: str, latencies: list, seconds: float) -> dict:
    ms = sorted(x * 1000 for x in latencies)
    return {"phase": name, "polls_per_s": round(len(ms) / seconds, 1),
            "p50_ms": round(statistics.median(ms), 2), "p99_ms": round(ms[int(0.99 * (len(ms) - 1))], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()

    server, store, config = start_server()
    long_flac = speak(PARAGRAPH, SANDBOX, speed=140)
    duration = soundfile.info(io.BytesIO(long_flac)).duration
    pollers = paired(store, config, POLLERS)
    talkers = paired(store, config, TALKERS)
    urls = [speech_access.url(server.url, speech_access.issue(store, uuid)) for uuid, _ in talkers]
    in_process = SpeechToText(config["stt"])
    in_process.load()
    answers = {"ok": 0, "busy": 0}

    def through_worker(n):
        response = requests.post(f"{urls[n]}/stt", data=long_flac, timeout=300)
        answers["ok" if response.ok else "busy"] += 1
        if not response.ok:  # 503: come back when told
            time.sleep(float(response.headers.get("Retry-After", 1)))

    def inside_server(n):
        in_process.transcribe(long_flac, "en-us")

    phases = {"idle": None, "stt_in_worker": through_worker, "stt_in_server_process": inside_server}
    requests.post(f"{urls[0]}/stt", data=long_flac, timeout=300)  # the worker loads its engine
    results = {name: [] for name in phases}
    order = list(phases)
    for n in range(args.rounds):
        for name in order[n % len(order):] + order[:n % len(order)]:
            results[name].append(poll_figures(name, poll_phase(server.url, pollers, args.seconds,
                                                               phases[name]), args.seconds))
    print(json.dumps({"utterance_s": round(duration, 1), "pollers": POLLERS, "talkers": TALKERS,
                      "rounds": args.rounds, "seconds_per_phase": args.seconds,
                      "worker_answers": answers}))
    idle_p99 = statistics.median(r["p99_ms"] for r in results["idle"])
    for name, rows in results.items():
        p99 = [r["p99_ms"] for r in rows]
        print(json.dumps({"phase": name, "p99_ms_min_med_max": [min(p99), statistics.median(p99), max(p99)],
                          "p50_ms_med": statistics.median(r["p50_ms"] for r in rows),
                          "polls_per_s_med": statistics.median(r["polls_per_s"] for r in rows),
                          "p99_vs_idle": round(statistics.median(p99) / idle_p99, 2)}))

    # STT real-time factor, in-process (the engine alone)
    started = time.perf_counter()
    in_process.transcribe(long_flac, "en-us")
    print(json.dumps({"engine": in_process.module, "stt_rtf": round((time.perf_counter() - started) / duration, 3)}))

    # TTS: plugin in-process, miss and hit through the route
    tts = TextToSpeech(config["tts"] | {"lang": config["lang"]})
    tts.load()
    phrases = [f"the time is {h} {m:02d}" for h in range(1, 13) for m in (5, 20, 35, 50)]
    direct, miss, hit, rtf = [], [], [], []
    for n, phrase in enumerate(phrases[:24]):
        started = time.perf_counter()
        audio, _ = tts.synthesize(phrase + " exactly", "en-us")
        direct.append(time.perf_counter() - started)
        rtf.append(direct[-1] / soundfile.info(io.BytesIO(audio)).duration)
        for bucket in (miss, hit):  # the first request synthesizes, the second is cached
            started = time.perf_counter()
            response = requests.get(f"{urls[n % TALKERS]}/v2/synthesize",
                                    params={"utterance": phrase, "lang": "en-us"}, timeout=60)
            bucket.append(time.perf_counter() - started)
            assert response.ok, response.text
    for name, values in (("tts_plugin_in_process", direct), ("tts_route_cache_miss", miss),
                         ("tts_route_cache_hit", hit)):
        print(json.dumps(summary(name, values)))
    print(json.dumps({"engine": tts.module, "tts_rtf_median": round(statistics.median(rtf), 3),
                      "miss_overhead_ms": round((statistics.median(miss) - statistics.median(direct)) * 1000, 2)}))
    server.stop()


if __name__ == "__main__":
    main()
