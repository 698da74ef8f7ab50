"""A tiny pocketsphinx language model, so STT tests can assert exact transcripts.

pocketsphinx's bundled free-form English model is poor on synthetic speech ("hello
world" comes back as "oh we're ill"). A language model built from a few sentences
makes recognition of espeak-ng speech exact (test_stt_service.py measures this), and
cutting the dictionary down to their words makes the plugin load in milliseconds
instead of the 10-20 s the full dictionary takes with a custom model. The plugin,
decoder, audio path and backend are all the real ones; only the vocabulary is small.

    config["stt"] = pocketsphinx_block(tmp_path, SENTENCES)
"""
from os.path import dirname, join
from pathlib import Path
from typing import Iterable

MODULE = "ovos-stt-plugin-pocketsphinx"
# the command phrases test_stt_service.py measured as exact: a model of only two or
# three sentences is too sparse (44.1 kHz stereo "turn on the lights" came back "like")
SENTENCES = ("yes", "no", "stop", "hello world", "what time is it", "good morning", "thank you",
             "how are you", "what is your name", "tell me a joke", "play some music",
             "turn on the lights", "turn off the lights", "open the door", "close the door",
             "one two three four five", "six seven eight nine ten",
             "set a timer for five minutes", "what is the weather like today")


def _default_dictionary() -> str:
    import speech_recognition
    return join(dirname(speech_recognition.__file__), "pocketsphinx-data", "en-US",
                "pronounciation-dictionary.dict")


def pocketsphinx_block(folder, sentences: Iterable[str] = SENTENCES) -> dict:
    """An `stt` config block for the pocketsphinx plugin knowing only `sentences`: a
    language model built from them (pocketsphinx's own ArpaBoLM, as test_stt_service
    does) and a dictionary cut down to their words."""
    from pocketsphinx.lm import ArpaBoLM
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sentences = [" ".join(s.lower().split()) for s in sentences]
    model = ArpaBoLM(text="\n".join(sentences) + "\n", add_start=True, discount_mass=0.1)
    model.compute()
    model.write_file(str(folder / "words.arpa"))
    words = {w for s in sentences for w in s.split()}
    with open(_default_dictionary(), encoding="utf-8") as f:
        entries = [line for line in f if line.split(" ", 1)[0].split("(")[0] in words]
    (folder / "words.dict").write_text("".join(entries), encoding="utf-8")
    return {"module": MODULE, MODULE: {"language-model": str(folder / "words.arpa"),
                                       "pronounciation-dictionary": str(folder / "words.dict")}}
