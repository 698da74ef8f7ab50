"""Test helper: real synthetic speech audio made with espeak-ng and sox.

Needs the Debian packages ``espeak-ng`` and ``sox`` (``apt-get install
espeak-ng sox``). Nothing here is mocked: the bytes are what a device would
upload (FLAC or WAV), so the tests exercise the real decoder and STT plugin.

    from audio import speak
    flac = speak("hello world", tmp_path)                  # 16 kHz mono FLAC
    wav = speak("hello world", tmp_path, fmt="wav", rate=44100, channels=2)
"""
import io
import re
import shutil
import subprocess
import wave
from pathlib import Path
from typing import List, Optional, Union

TOOLS = ("espeak-ng", "sox")
FORMATS = ("flac", "wav")


def missing_tools() -> List[str]:
    """The names of the command-line tools this helper needs that are not on PATH."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:60] or "speech"


def speak(text: str, path_or_dir: Union[str, Path], fmt: str = "flac",
          rate: int = 16000, channels: int = 1, bits: int = 16,
          voice: str = "en-us", speed: Optional[int] = None) -> bytes:
    """Synthesise ``text`` and return the encoded audio bytes (also written to disk).

    ``path_or_dir``: a file path, or an existing directory in which a file named
    after the text is created. ``fmt`` is "flac" or "wav"; ``rate``, ``channels``
    and ``bits`` set the output sample rate, channel count and sample width, so a
    test can mimic any device (the default, 16 kHz 16-bit mono FLAC, is what
    Mycroft devices upload). ``voice`` and ``speed`` (words per minute) go to
    espeak-ng. Raises RuntimeError with a clear message if a tool is missing or fails.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, not {fmt!r}")
    missing = missing_tools()
    if missing:
        raise RuntimeError(f"missing {', '.join(missing)}: apt-get install espeak-ng sox")
    dest = Path(path_or_dir)
    if dest.is_dir():
        dest = dest / f"{_slug(text)}_{rate}_{channels}ch_{bits}b.{fmt}"
    raw_wav = dest.with_name(dest.name + ".espeak.wav")
    espeak = ["espeak-ng", "-v", voice, "-w", str(raw_wav)]
    if speed:
        espeak += ["-s", str(speed)]
    _run(espeak + ["--", text])
    try:
        _run(["sox", str(raw_wav), "-t", fmt, "-r", str(rate), "-c", str(channels),
              "-b", str(bits), str(dest)])
    finally:
        raw_wav.unlink(missing_ok=True)
    return dest.read_bytes()


def _run(cmd: List[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.strip()}")


def _mono_wav(frames: bytes) -> bytes:
    """16-bit samples at 16 kHz, mono, as a WAV file."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(frames)
    return buffer.getvalue()


def buzz_wav(seconds: float) -> bytes:
    """A 16 kHz mono WAV of a square wave: audio that plays, with a known length."""
    return _mono_wav(b"\x00\x10\x00\xf0" * int(8000 * seconds))


def silence_wav(seconds: float) -> bytes:
    """A 16 kHz mono WAV of digital silence (10 ms of it is too short for a decoder to
    imagine a word in it: nothing is understood)."""
    return _mono_wav(b"\x00\x00" * int(16000 * seconds))


def word_errors(said: str, heard: str) -> int:
    """Word-level edit distance between two transcripts (substitutions, insertions,
    deletions), the numerator of the word error rate."""
    ref, hyp = said.split(), heard.split()
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (r != h))
    return row[-1]


def transcribe_without_network(audio: bytes, folder: Path, stt_config: dict) -> str:
    """What `SpeechToText(stt_config)` makes of `audio` in a fresh process inside a
    network namespace with no interface up: the output line "RESULT [transcripts] engine".
    Skips the test where no namespace can be made."""
    import pytest
    import sys
    import textwrap
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {probe.stderr.decode().strip()}")
    audio_path = Path(folder) / "offline-utterance.flac"
    audio_path.write_bytes(audio)
    script = textwrap.dedent(f"""
        import socket, sys
        try:
            socket.create_connection(("pypi.org", 443), timeout=2)
            sys.exit("the network is reachable")
        except OSError:
            pass
        from ovos_skill_personal_backend.backend.services.stt import SpeechToText
        stt = SpeechToText({stt_config!r}, {str(Path(folder) / "data")!r})
        print("RESULT", stt.transcribe(open({str(audio_path)!r}, "rb").read(), "en-us"), stt.module)
    """)
    run = subprocess.run(["unshare", "-rn", sys.executable, "-c", script],
                         capture_output=True, text=True, timeout=180)
    return next((line for line in run.stdout.splitlines() if line.startswith("RESULT")),
                run.stdout + run.stderr)
