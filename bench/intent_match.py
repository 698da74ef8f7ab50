"""How much of a language's whole phrasing set each intent engine matches, and how fast.

    .venv/bin/python bench/intent_match.py --padatious-python .venv-padatious/bin/python \
        [--lang en-us] [--rounds 2]

Every sentence the skill's .intent files expand to, slots filled (test/test_skill_languages.py
`phrasings`, `filled`), goes to ovos-core's intent service in a MiniCroft running the skill
(test/skill_harness.py), which answers which intent it matched without running the handler.
Each engine runs in its own process, as in the tests: Padacioso in this interpreter, Padatious
in `--padatious-python` (a venv with ovos-padatious: scripts/test.sh builds .venv-padatious),
with the tests' work-around for its lost slot braces and its training cached there.
Padacioso matches in-process here too (the harness replaces its per-utterance process pool).

Prints one JSON line per engine (phrasings, matched, rate; the same for `HELD_OUT`, English
sentences the templates do not spell out; and milliseconds per utterance: the median of each
round, min/median/max over rounds) and a line of ratios. Compare within one run, not across runs.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

TEST_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test")
# English sentences people say that the templates do not spell out (those that they do are
# left out when measured): how far each engine reaches past its templates
HELD_OUT = {
    "pair.intent": ["hook this speaker up to my backend", "can you pair this thing",
                    "please register me with the backend"],
    "use.backend.intent": ["switch over to my personal backend", "use my local server"],
    "stop.using.intent": ["quit using my backend", "stop talking to the personal backend"],
    "approve.new.intent": ["yes let that new device in", "approve the new one"],
    "approve.code.intent": ["please approve code a b c one two three",
                            "ok approve the code a b c one two three"],
    "deny.new.intent": ["no don't let the new speaker pair", "reject that new one"],
    "deny.code.intent": ["please reject code a b c one two three",
                         "decline pairing code a b c one two three"],
    "pairings.waiting.intent": ["anyone waiting to pair", "are any devices asking to pair"],
    "list.devices.intent": ["how many speakers have i got", "tell me which devices are paired"],
    "devices.online.intent": ["which speakers are online right now", "is everything online"],
    "forget.device.intent": ["please forget the kitchen speaker", "remove kitchen"],
    "rename.device.intent": ["please rename this speaker to kitchen", "call yourself kitchen"],
    "recordings.on.intent": ["please keep my recordings", "go ahead and save my voice recordings"],
    "recordings.off.intent": ["please stop keeping my recordings", "don't store my recordings"],
    "house.recording.on.intent": ["start recording wake words in the whole house",
                                  "record wake words on every device"],
    "house.recording.off.intent": ["stop recording wake words in the whole house",
                                   "stop saving recordings from every device"],
    "backend.address.intent": ["what's the address of the backend",
                               "what is the backend url please"],
    "where.am.i.intent": ["where is this speaker located", "what city is this device in"],
    "change.location.intent": ["please set my location to tokyo", "i just moved to tokyo"],
}


def measure(engine: str, lang: str, rounds: int) -> dict:
    """Run in the child: start a device on `engine`, match every phrasing `rounds` times."""
    sys.path.insert(0, TEST_DIR)
    import conftest  # isolates the XDG paths in a temporary folder before any OVOS import
    from test_skill_languages import ENGLISH, tag

    secondary = [] if lang == ENGLISH else [tag(lang)]
    try:
        return _measure_on(engine, secondary, lang, rounds)
    finally:
        shutil.rmtree(conftest.SANDBOX, ignore_errors=True)


def _measure_on(engine: str, secondary: list, lang: str, rounds: int) -> dict:
    from ovoscope import CONVERSE_PIPELINE, PADACIOSO_PIPELINE, PADATIOUS_PIPELINE
    from skill_harness import padatious_slot_braces_kept, running_device
    from test_skill_languages import filled, phrasings, tag

    if engine == "padatious":
        cache = os.path.join(sys.prefix, "padatious-intent-cache")
        with padatious_slot_braces_kept():
            return _match_all(running_device(
                secondary, CONVERSE_PIPELINE + PADATIOUS_PIPELINE,
                {"ovos-padatious-pipeline-plugin": {"intent_cache": cache}}, boot_timeout=1800),
                lang, rounds, engine, filled, phrasings, tag)
    return _match_all(running_device(secondary, CONVERSE_PIPELINE + PADACIOSO_PIPELINE),
                      lang, rounds, engine, filled, phrasings, tag)


def _match_all(devices, lang, rounds, engine, filled, phrasings, tag) -> dict:
    device = next(devices)
    try:
        sentences = [(intent, filled(s, lang)) for intent, found in phrasings(lang).items()
                     for s in found]
        spelled_out = {utterance for _, utterance in sentences}
        held_out = [(intent, utterance) for intent, found in HELD_OUT.items() for utterance in found
                    if lang == "en-us" and utterance not in spelled_out]
        reached = sum(device.intent_of(utterance, tag(lang)) == intent
                      for intent, utterance in held_out)
        medians, matched = [], 0
        for _ in range(rounds):
            times, matched = [], 0
            for intent, utterance in sentences:
                start = time.perf_counter()
                got = device.intent_of(utterance, tag(lang))
                times.append((time.perf_counter() - start) * 1000)
                matched += got == intent
            medians.append(statistics.median(times))
        return {"engine": engine, "lang": lang, "phrasings": len(sentences), "matched": matched,
                "rate": round(matched / len(sentences), 4),
                "held_out": len(held_out), "held_out_matched": reached,
                "held_out_rate": round(reached / len(held_out), 4) if held_out else None,
                "ms_per_utterance": {"min": round(min(medians), 2),
                                     "median": round(statistics.median(medians), 2),
                                     "max": round(max(medians), 2)}}
    finally:
        next(devices, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--padatious-python", default=".venv-padatious/bin/python")
    parser.add_argument("--lang", default="en-us")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.lang, args.rounds)), flush=True)
        return
    results = {}
    for engine, python in (("padacioso", sys.executable), ("padatious", args.padatious_python)):
        out = subprocess.run([python, os.path.abspath(__file__), "--child", engine, "--lang",
                              args.lang, "--rounds", str(args.rounds)],
                             capture_output=True, text=True, check=True,
                             env={**os.environ, "OVOS_DEFAULT_LOG_LEVEL": "ERROR"})
        results[engine] = json.loads(out.stdout.strip().splitlines()[-1])
        print(json.dumps(results[engine]), flush=True)
    padacioso, padatious = results["padacioso"], results["padatious"]
    print(json.dumps({"ratio": "padatious/padacioso",
                      "rate": round(padatious["rate"] / padacioso["rate"], 4),
                      "held_out_matched": f"{padatious['held_out_matched']}/"
                                          f"{padacioso['held_out_matched']}",
                      "ms_per_utterance_median": round(
                          padatious["ms_per_utterance"]["median"]
                          / padacioso["ms_per_utterance"]["median"], 2)}))


if __name__ == "__main__":
    main()
