"""Private speech-to-text: devices upload audio, a local OPM STT plugin transcribes it.

Configured the mycroft.conf way (the backend config's ``stt`` block)::

    {"module": "ovos-stt-plugin-pocketsphinx",          # the default: offline, bundled model
     "ovos-stt-plugin-pocketsphinx": {...plugin config...},
     "lang": "en-us",        # optional: default language, also given to the plugin at load
     "thread_safe": false,   # optional: true lets calls run in parallel (stateless plugins)
     "max_seconds": 120,     # longest accepted utterance
     "max_concurrent": 2,    # transcriptions in progress at once, in all
     "max_per_device": 1,    # ... and per device (per address for the public /stt)
     "max_queued": 2,        # requests waiting for a slot; more get 503 + Retry-After
     "queue_seconds": 5}     # the longest a request waits for a slot

Uploads (FLAC as Mycroft devices send, WAV, or anything libsndfile reads, 4-96 kHz,
1-8 channels, any width) are decoded with ``soundfile`` and converted to 16 kHz
16-bit mono, the format every OPM STT plugin accepts. The header is checked before any
sample is decoded (rate, channels, declared length against ``max_seconds``), then the
audio is decoded, downmixed and resampled block by block into a buffer the size of
``max_seconds`` at 16 kHz: a request's memory is bounded by the duration cap, not by
what its header claims (a 183 KiB FLAC of silence declaring 8 channels at 192 kHz took
350 MB when it was decoded whole). Rates above 96 kHz and more than 8 channels are
refused: no microphone a voice assistant uses records them, and each costs decoding
time in proportion. The plugin is loaded once, on first use (or by ``load()``), and
reused.

The server answers every route from 8 worker threads, and a transcription holds one for
seconds: ``Admission`` keeps speech to at most ``max_concurrent + max_queued`` of them
(config validation keeps that at half), so device polls never wait for a thread while
speech runs (they can still wait for the interpreter lock: see Admission).
"""
import contextlib
import io
import math
import re
import threading
import time
from fractions import Fraction
from typing import TYPE_CHECKING, Dict, Iterator, List, Optional, Sequence, Tuple

from ovos_utils.log import LOG

from ..errors import BadRequest, ServiceUnavailable
from . import plugins
from . import stt_models

# numpy is imported where audio is decoded: importing it at start costs 0.1 s and 15 MB
# for routes many servers never serve
if TYPE_CHECKING:
    import numpy as np

SAMPLE_RATE = 16000      # what the plugins get: 16 kHz ...
SAMPLE_WIDTH = 2         # ... 16-bit signed little-endian ...
MIN_INPUT_RATE = 4000    # ... mono; input rates outside these bounds are not speech audio
MAX_INPUT_RATE = 96000   # (decoding cost grows with rate x channels: see the module doc)
MAX_CHANNELS = 8
MAX_SECONDS = 120        # default longest utterance; bounds the memory a request can take
RETRY_LOAD_AFTER = 30.0  # seconds a failed plugin load is remembered before trying again
# defaults of the admission limits (see Admission and the module doc)
MAX_CONCURRENT, MAX_PER_DEVICE, MAX_QUEUED, QUEUE_SECONDS = 2, 1, 2, 5.0
_READ_BLOCK = 1024       # frames per read: small, so a decode error at the end loses little
_RESAMPLE_ZERO_CROSSINGS = 16
_RESAMPLE_ELEMENTS = 1 << 18  # kernel taps gathered at once: bounds the resampler's scratch


# ---------------------------------------------------------------- decoding

def decode_audio(data: bytes, max_seconds: float = MAX_SECONDS) -> bytes:
    """FLAC/WAV/... bytes -> raw 16 kHz 16-bit mono little-endian PCM.

    Raises BadRequest with a message saying what is wrong when the bytes are not
    decodable audio: empty, unknown format, corrupt or truncated stream, header values
    out of bounds, no samples, or longer than ``max_seconds``. The header is judged
    before decoding, and the samples are converted block by block, so the memory taken
    is bounded by ``max_seconds``, whatever the header declares.
    """
    sound = _open(data)
    with sound:
        _check_header(sound, max_seconds)
        declared, fmt = sound.frames, sound.format
        pcm, frames, error = _decode_blocks(sound, max_seconds)
    length_known = _length_known(declared)
    if error is not None and (length_known or not frames):
        raise BadRequest(f"the audio is corrupt or truncated ({_reason(error)})")
    if fmt == "FLAC" and length_known and frames < declared:
        # FLAC headers hold the exact length (libsndfile clamps WAV lengths to the data,
        # so a cut WAV just reads shorter, like the streamed WAVs some recorders write)
        raise BadRequest(f"the audio is truncated or its header is wrong: {frames} samples "
                         f"of the {declared} declared")
    if error is not None:  # unknown-length stream: libsndfile stumbles at its end
        LOG.debug(f"audio of unknown length ended with a decoder error after {frames} frames: {error}")
    if not frames:
        raise BadRequest("the audio contains no samples")
    return pcm


def _open(data: bytes):
    """A soundfile.SoundFile reading `data`; BadRequest when it is no audio it can read."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BadRequest("the audio must be sent as the request body (FLAC or WAV bytes)")
    data = bytes(data)
    if not data:
        raise BadRequest("the audio is empty")
    try:
        import soundfile
    except Exception as e:  # the wheel bundles libsndfile; a broken install is a server problem
        LOG.error(f"soundfile cannot be imported: {e!r}")
        raise ServiceUnavailable("audio decoding is unavailable: the soundfile package is missing") from e
    try:
        return soundfile.SoundFile(io.BytesIO(data))
    except Exception as e:
        raise BadRequest(f"the audio cannot be decoded; send FLAC or WAV ({_reason(e)})") from e


def _length_known(declared: int) -> bool:
    # a FLAC stream may leave its length unknown (0 in STREAMINFO): libsndfile then
    # reports 2**63-1 frames, and fails reading the stream's very end
    return 0 < declared < 2 ** 62


def _check_header(sound, max_seconds: float) -> None:
    """Refuse, before a sample is decoded, what the header declares out of bounds: the
    rate and channels decide what each second costs to decode, the length how many."""
    rate, channels, declared = sound.samplerate, sound.channels, sound.frames
    if not MIN_INPUT_RATE <= rate <= MAX_INPUT_RATE:
        raise BadRequest(f"the audio declares an unsupported sample rate of {rate} Hz "
                         f"(accepted: {MIN_INPUT_RATE}-{MAX_INPUT_RATE} Hz)")
    if not 1 <= channels <= MAX_CHANNELS:
        raise BadRequest(f"the audio declares {channels} channels (accepted: 1-{MAX_CHANNELS})")
    if _length_known(declared) and declared > max_seconds * rate:
        raise BadRequest(f"the audio is longer than the {max_seconds:g} s accepted "
                         f"({declared / rate:.0f} s declared)")


def _decode_blocks(sound, max_seconds: float) -> Tuple[bytes, int, Optional[Exception]]:
    """(16 kHz PCM, input frames read, the decoder error that ended the stream or None).

    Each block is downmixed and resampled as it is read, into a buffer the size of
    ``max_seconds`` at 16 kHz; a stream longer than that (its header said otherwise, or
    nothing) is refused as soon as it is.
    """
    import numpy as np
    rate = sound.samplerate
    max_frames = int(max_seconds * rate)
    resampler = Resampler(rate, SAMPLE_RATE)
    pcm = np.empty(max(1, max_frames * SAMPLE_RATE // rate), dtype="<i2")
    written, frames, error = 0, 0, None
    while True:
        try:
            block = sound.read(_READ_BLOCK, dtype="float32", always_2d=True)
        except Exception as e:
            error = e
            break
        if not len(block):
            break
        frames += len(block)
        if frames > max_frames:
            raise BadRequest(f"the audio is longer than the {max_seconds:g} s accepted")
        written = _put_pcm(pcm, written, resampler.feed(block.mean(axis=1, dtype=np.float32)))
    written = _put_pcm(pcm, written, resampler.finish())
    return pcm[:written].tobytes(), frames, error


def _put_pcm(pcm: "np.ndarray", at: int, samples: "np.ndarray") -> int:
    """Write float samples into `pcm` (16-bit) from index `at`; the index after them."""
    import numpy as np
    end = at + len(samples)
    pcm[at:end] = np.clip(np.rint(samples * 32768.0), -32768, 32767)
    return end


def _reason(error: Exception) -> str:
    text = str(error)
    # libsndfile messages start with "Error opening <_io.BytesIO object at 0x...>: "
    return text.split(": ", 1)[1] if text.startswith("Error opening") and ": " in text else text


def resample(samples: "np.ndarray", src_rate: int, dst_rate: int) -> "np.ndarray":
    """A whole mono float signal resampled (see Resampler)."""
    import numpy as np
    resampler = Resampler(src_rate, dst_rate)
    return np.concatenate([resampler.feed(samples), resampler.finish()])


class Resampler:
    """Band-limited (windowed-sinc, polyphase) resampling of a mono float signal, fed
    block by block: memory stays bounded by the block and the kernel, whatever the
    length of the signal.

    Downsampling low-passes below the new Nyquist frequency, so high frequencies do not
    alias into the speech band. Output j is the kernel applied at input time j*src/dst of
    the signal padded with `half` zeros before it and `half + 1` after it; it is emitted
    as soon as its whole window has been fed, the rest by `finish()`.
    """

    def __init__(self, src_rate: int, dst_rate: int):
        import numpy as np
        self._same = src_rate == dst_rate
        ratio = Fraction(dst_rate, src_rate)            # output samples per input sample
        self._phases, self._step = ratio.numerator, ratio.denominator  # j sits at j*step/phases
        # cutoff in cycles per input sample: below both Nyquist frequencies, with a little rolloff
        cutoff = 0.5 * min(1.0, dst_rate / src_rate) * 0.94
        self._half = half = int(math.ceil(_RESAMPLE_ZERO_CROSSINGS / (2 * cutoff)))  # input samples
        offsets = np.arange(-half + 1, half + 1)
        # one weight row per fractional phase of the output positions
        frac = (np.arange(self._phases) * self._step % self._phases) / self._phases
        dist = frac[:, None] - offsets[None, :]
        window = 0.5 + 0.5 * np.cos(np.pi * np.clip(dist / half, -1.0, 1.0))  # Hann
        weights = (2 * cutoff * np.sinc(2 * cutoff * dist) * window).astype(np.float32)
        weights /= weights.sum(axis=1, keepdims=True)   # unity gain at DC for every phase
        self._weights = weights
        self._chunk = max(1, _RESAMPLE_ELEMENTS // (2 * half))
        self._padded = np.zeros(half, np.float32)  # the padded signal from index _start on
        self._start = 0
        self._next = 0   # the next output index
        self._fed = 0    # input samples fed so far

    def feed(self, samples: "np.ndarray") -> "np.ndarray":
        """The output samples that `samples` (the next input block) completes."""
        import numpy as np
        samples = np.asarray(samples, dtype=np.float32)
        self._fed += len(samples)
        if self._same:
            return samples
        self._padded = np.concatenate([self._padded, samples])
        # output j reads padded[base + 1 : base + 1 + 2*half], base = j*step//phases
        # the outputs whose whole window is here: those with base <= last_base
        last_base = self._start + len(self._padded) - 1 - 2 * self._half
        return self._emit(-(-(last_base + 1) * self._phases // self._step))

    def finish(self) -> "np.ndarray":
        """The last output samples, once the whole signal has been fed."""
        import numpy as np
        if self._same or not self._fed:
            return np.zeros(0, np.float32)
        self._padded = np.concatenate([self._padded, np.zeros(self._half + 1, np.float32)])
        return self._emit(max(1, self._fed * self._phases // self._step))

    def _emit(self, end: int) -> "np.ndarray":
        """Outputs _next..end-1, a chunk of windows at a time; then forget the input that
        no later output reads."""
        import numpy as np
        from numpy.lib.stride_tricks import sliding_window_view
        if end <= self._next:
            return np.zeros(0, np.float32)
        out = np.empty(end - self._next, np.float32)
        windows = sliding_window_view(self._padded, 2 * self._half)
        for first in range(self._next, end, self._chunk):
            j = np.arange(first, min(first + self._chunk, end), dtype=np.int64)
            rows = j * self._step // self._phases + 1 - self._start
            out[first - self._next:first - self._next + len(j)] = np.einsum(
                "ij,ij->i", windows[rows], self._weights[j % self._phases])
        self._next = max(self._next, end)
        unread = self._next * self._step // self._phases + 1 - self._start
        self._padded, self._start = self._padded[unread:], self._start + unread
        return out


_AUDIO_DATA_CLASS = None


def audio_data_class() -> type:
    """The AudioData type handed to plugins.

    OPM 2.x plugins are typed against ``ovos_plugin_manager.utils.audio.AudioData``;
    older ones (ovos-stt-plugin-pocketsphinx 0.1.1 among them) check
    ``isinstance(audio, speech_recognition.AudioData)``. OPM rebinds that name to
    its own class when imported, but a plugin that imported speech_recognition's
    class first still holds the original; both classes share one constructor and
    attributes, so the type derives from every distinct one and passes any check.
    """
    global _AUDIO_DATA_CLASS
    if _AUDIO_DATA_CLASS is None:
        from ovos_plugin_manager.utils.audio import AudioData as OPMAudioData
        bases = [OPMAudioData]
        try:
            from speech_recognition.audio import AudioData as SRAudioData
        except Exception:
            SRAudioData = None
        if isinstance(SRAudioData, type) and not issubclass(OPMAudioData, SRAudioData):
            bases.append(SRAudioData)
        _AUDIO_DATA_CLASS = type("AudioData", tuple(bases), {
            "__doc__": "16 kHz 16-bit mono audio for OPM (and speech_recognition) plugins.",
            "__module__": __name__})
    return _AUDIO_DATA_CLASS


def to_audio_data(pcm: bytes):
    """Raw 16 kHz 16-bit mono PCM -> an AudioData object OPM STT plugins accept."""
    return audio_data_class()(pcm, SAMPLE_RATE, SAMPLE_WIDTH)


# ---------------------------------------------------------------- admission

class EngineBusy(ServiceUnavailable):
    """A transcription refused for want of a slot: 503, with the seconds to wait."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class Admission:
    """How many transcriptions may hold the server's worker threads, and whose.

    Each request handled holds one of waitress's 8 worker threads until it is answered,
    and a transcription takes seconds (2 minutes of audio: 4 s of pocketsphinx, which
    runs one call at a time): 8 concurrent uploads from one device held all of them, and
    every other device's poll waited for one. Here at most `running` transcriptions go
    on at once, at most `waiting` more wait for a slot (each `wait_seconds` at most), and
    one client has at most `per_client` in progress or waiting. Whatever goes beyond is
    refused at once with EngineBusy, so speech never holds more than `running + waiting`
    threads, and a device retrying cannot queue ahead of the others. The HTTP routes take
    a slot before reading the body; in-process callers (tests, benchmarks) need none.

    Threads are not all: pocketsphinx holds the interpreter lock for a whole utterance,
    so while it decodes, no other request of this process progresses (a poll can wait
    for up to one transcription; only running the plugin in a process of its own would
    end that).
    """

    def __init__(self, running: int, per_client: int, waiting: int, wait_seconds: float):
        self.running, self.per_client, self.waiting = running, per_client, waiting
        self.wait_seconds = wait_seconds
        self._changed = threading.Condition()
        self._in_progress = 0
        self._queued = 0
        self._clients: Dict[str, int] = {}   # in progress or waiting, per client

    @contextlib.contextmanager
    def slot(self, client: str) -> Iterator[None]:
        """Hold a transcription slot for `client` during the block; EngineBusy when none
        can be had now or within `wait_seconds`."""
        with self._changed:
            self._admit(client)
            self._clients[client] = self._clients.get(client, 0) + 1
            try:
                self._wait_for_slot()
            except EngineBusy:
                self._forget(client)
                raise
            self._in_progress += 1
        try:
            yield
        finally:
            with self._changed:
                self._in_progress -= 1
                self._forget(client)
                self._changed.notify()

    def _admit(self, client: str) -> None:
        if self._clients.get(client, 0) >= self.per_client:
            raise self._busy(f"this device already has {self.per_client} transcription(s) "
                             "in progress; send one utterance at a time")
        if self._in_progress >= self.running and self._queued >= self.waiting:
            raise self._busy("the speech engine is busy with other devices")

    def _wait_for_slot(self) -> None:
        deadline = time.monotonic() + self.wait_seconds
        self._queued += 1
        try:
            while self._in_progress >= self.running:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._busy("the speech engine is busy with other devices")
                self._changed.wait(left)
        finally:
            self._queued -= 1

    def _forget(self, client: str) -> None:
        left = self._clients.pop(client) - 1
        if left:
            self._clients[client] = left

    def _busy(self, message: str) -> EngineBusy:
        return EngineBusy(f"{message}; try again shortly", max(1, math.ceil(self.wait_seconds)))


# ---------------------------------------------------------------- service

class SpeechToText:
    """Transcribes uploaded audio with the engine services/stt_models.py chooses for the
    language (Whisper by default, pocketsphinx when no Whisper model can be had), or with
    the OPM STT plugin the ``stt`` block names."""

    def __init__(self, config: dict, data_dir: Optional[str] = None):
        config = dict(config or {})
        self._config = config
        self._data_dir = data_dir or _default_data_path()
        self._lang = str(config.get("lang") or "").strip() or None
        self._max_seconds = _positive_number(config.get("max_seconds"), MAX_SECONDS, "stt.max_seconds")
        # for the HTTP routes (ranges checked by config.validate)
        self.admission = Admission(config.get("max_concurrent", MAX_CONCURRENT),
                                   config.get("max_per_device", MAX_PER_DEVICE),
                                   config.get("max_queued", MAX_QUEUED),
                                   config.get("queue_seconds", QUEUE_SECONDS))
        self._engines: Dict[tuple, object] = {}        # Choice.key -> loaded plugin
        self._call_locks: Dict[tuple, Optional[threading.Lock]] = {}  # None: thread-safe
        self._failures: Dict[tuple, Tuple[ServiceUnavailable, float]] = {}
        self._load_lock = threading.Lock()
        self._active: Optional[stt_models.Choice] = None   # the last engine used
        self.load_seconds: Optional[float] = None

    @property
    def module(self) -> str:
        """The OPM entry point of the engine in use (or that would be, before any load)."""
        return (self._active or self._choice(None)).module

    @property
    def loaded(self) -> bool:
        return bool(self._engines)

    def load(self, lang: Optional[str] = None):
        """Load the engine for `lang` (default: the configured language) now, idempotent,
        and return it; ServiceUnavailable on failure.

        Called by the first transcription; call it at startup to pay the load time early.
        A failure is remembered for RETRY_LOAD_AFTER seconds, then loading is retried; a
        Whisper model that fails to load gives way to the fallback meanwhile.
        """
        return self._load(self._choice(lang))[1]

    def status(self, lang: Optional[str] = None) -> dict:
        """What answers for `lang` (default: the configured language): engine, model,
        where the model came from, why the fallback is used (None when it is not), the
        languages it serves, and any model download in progress. Loads nothing."""
        choice = self._effective(self._choice(lang))
        return {"engine": choice.module, "model": choice.model, "source": choice.source,
                "fallback_reason": choice.reason, "languages": choice.languages or "all",
                "device": "cuda" if choice.config.get("use_cuda") else "cpu",
                "loaded": choice.key in self._engines, "load_seconds": self.load_seconds,
                "downloads": stt_models.downloads()}

    def _choice(self, lang: Optional[str]) -> stt_models.Choice:
        return stt_models.choose(self._config, self._data_dir, lang or self._lang or "en-us")

    def _effective(self, choice: stt_models.Choice) -> stt_models.Choice:
        """`choice`, or the fallback while its Whisper model's last load failed."""
        failure = self._failures.get(choice.key)
        if choice.module == stt_models.WHISPER and failure and choice.key not in self._engines:
            return stt_models.fallback(self._config, f"the Whisper model '{choice.model}' failed "
                                                     f"to load: {failure[0].message}")
        return choice

    def _load(self, choice: stt_models.Choice) -> tuple:
        """(the choice used, its engine): the fallback's when a Whisper model fails."""
        try:
            return choice, self._engine(choice)
        except ServiceUnavailable:
            fallback = self._effective(choice)
            if fallback is choice:
                raise
            LOG.warning(f"STT: {fallback.reason}; using {fallback.module}")
            return fallback, self._engine(fallback)

    def _engine(self, choice: stt_models.Choice):
        engine = self._engines.get(choice.key)
        if engine is None:
            with self._load_lock:
                engine = self._engines.get(choice.key)
                if engine is None:
                    engine = self._load_new(choice)
        self._active = choice
        return engine

    def _load_new(self, choice: stt_models.Choice):
        failure = self._failures.get(choice.key)
        if failure and time.monotonic() - failure[1] < RETRY_LOAD_AFTER:
            raise ServiceUnavailable(failure[0].message)
        try:
            engine = self._create_engine(choice)
        except ServiceUnavailable as e:
            self._failures[choice.key] = (e, time.monotonic())
            raise
        self._failures.pop(choice.key, None)
        self._call_locks[choice.key] = None if self._is_thread_safe(engine) else threading.Lock()
        self._engines[choice.key] = engine
        return engine

    def _create_engine(self, choice: stt_models.Choice):
        module = choice.module
        if not isinstance(self._config.get(module, {}), dict):
            raise ServiceUnavailable(f"the configuration of STT plugin '{module}' must be an object")
        plugin_config = dict(choice.config)
        plugin_config.setdefault("module", module)
        if self._lang:
            plugin_config.setdefault("lang", self._lang)
        started = time.monotonic()
        engine = plugins.build("stt", module, plugin_config)
        self.load_seconds = time.monotonic() - started
        model = f" with model {choice.model} ({choice.source})" if choice.model else ""
        reason = f" (fallback: {choice.reason})" if choice.reason else ""
        LOG.info(f"STT plugin '{module}'{model} loaded in {self.load_seconds:.2f} s{reason}")
        return engine

    def _is_thread_safe(self, engine) -> bool:
        # OPM defines no thread-safety flag: calls are serialised unless the backend
        # config or the plugin (class or instance attribute `thread_safe = True`) says
        # otherwise. Streaming plugins keep per-stream state and are always serialised.
        if getattr(engine, "can_stream", False):
            return False
        if "thread_safe" in self._config:
            return self._config["thread_safe"] is True
        return getattr(engine, "thread_safe", False) is True

    def transcribe(self, audio: bytes, lang: str, limit: int = 1,
                   vocabulary: Sequence[str] = ()) -> List[str]:
        """Up to `limit` transcriptions of `audio` (FLAC/WAV bytes), best first.

        `vocabulary`: phrases the house says (backend/vocabulary.py); Whisper is given
        them as its initial prompt, which biases it towards their words. Returns [""]
        when nothing was recognised. BadRequest: undecodable audio or invalid limit;
        ServiceUnavailable: no engine can be loaded or it failed. Requests from the
        network take a slot of `admission` first.
        """
        if isinstance(limit, bool) or not isinstance(limit, int):
            try:
                limit = int(limit)
            except (TypeError, ValueError):
                raise BadRequest(f"limit must be a positive integer, got {limit!r}") from None
        limit = max(1, limit)
        lang = (lang or "").strip() or self._lang or "en-us"
        pcm = decode_audio(audio, self._max_seconds)
        choice, engine = self._load(self._choice(lang))
        started = time.monotonic()
        initial_prompt = prompt(vocabulary) if self._config.get("vocabulary", True) else None
        with self._call_locks.get(choice.key) or contextlib.nullcontext():
            results = self._run(engine, pcm, lang, initial_prompt)
        LOG.debug(f"STT '{choice.module}': {len(pcm) / (SAMPLE_RATE * SAMPLE_WIDTH):.2f} s of audio "
                  f"transcribed in {time.monotonic() - started:.2f} s")
        return best_alternatives(results, limit)

    def detect_language(self, audio: bytes, valid_langs: Sequence[str]) -> str:
        """Which of `valid_langs` (tags such as "en-us") `audio` is spoken in, by the
        engine's own language detection. BadRequest: no language given or undecodable
        audio; ServiceUnavailable: the engine in use cannot tell languages apart."""
        langs = [str(lang).strip().lower() for lang in valid_langs or () if str(lang).strip()]
        if not langs:
            raise BadRequest("valid_langs must name at least one language, e.g. en-us,pt-pt")
        pcm = decode_audio(audio, self._max_seconds)
        other = next((lang for lang in langs if not lang.startswith("en")), None)
        choice, engine = self._load(self._choice(other or langs[0]))
        if choice.reason or not callable(getattr(engine, "detect_language", None)):
            raise ServiceUnavailable(f"the STT engine '{choice.module}' cannot detect languages"
                                     + (f" ({choice.reason})" if choice.reason else ""))
        if choice.languages == ["en"] and other:
            raise ServiceUnavailable(f"the STT model '{choice.model}' knows only English: install a "
                                     "multilingual model to tell languages apart")
        try:
            with self._call_locks.get(choice.key) or contextlib.nullcontext():
                found, _ = engine.detect_language(pcm, [lang.split("-")[0] for lang in langs])
        except Exception as e:
            LOG.exception(f"STT plugin '{choice.module}' failed to detect the language")
            raise ServiceUnavailable(f"language detection failed: {type(e).__name__}: {e}") from e
        return next((lang for lang in langs if lang.split("-")[0] == found), langs[0])

    def _run(self, engine, pcm: bytes, lang: str, initial_prompt: Optional[str]) -> list:
        try:
            whisper = _whisper_model(engine)
            if whisper is not None:
                return [(_whisper_transcribe(whisper, engine, pcm, lang, initial_prompt), 1.0)]
            if getattr(engine, "can_stream", False) and hasattr(engine, "stream_start"):
                # OPM streaming plugins ignore execute()'s audio: feed the stream instead
                engine.stream_start(lang)
                chunk = SAMPLE_RATE * SAMPLE_WIDTH // 10
                for i in range(0, len(pcm), chunk):
                    engine.stream_data(pcm[i:i + chunk])
                return [(engine.stream_stop(), 1.0)]
            if _offers_alternatives(engine):
                return list(engine.transcribe(to_audio_data(pcm), lang) or [])
            return [(engine.execute(to_audio_data(pcm), lang), 1.0)]
        except Exception as e:
            # speech_recognition's UnknownValueError means "heard nothing intelligible"
            if type(e).__name__ == "UnknownValueError":
                return []
            LOG.exception(f"STT plugin '{type(engine).__name__}' failed to transcribe")
            raise ServiceUnavailable(f"STT plugin '{type(engine).__name__}' failed to transcribe "
                                     f"the audio: {type(e).__name__}: {e}") from e


# ---------------------------------------------------------------- Whisper

PROMPT_CHARS = 800   # Whisper reads at most 223 prompt tokens: about this many characters
# what Whisper adds that a voice assistant's transcript does not have: capitals, and the
# punctuation ending a sentence or a clause (not the "." of "3.5" nor the ":" of "10:30")
_PUNCTUATION = re.compile(r"[.,!?;:\u201d\"]+(?=\s|$)|(?:^|(?<=\s))[\u201c\"\u00bf\u00a1]+")


def prompt(vocabulary: Sequence[str]) -> Optional[str]:
    """Whisper's initial prompt from the house's phrases: as sentences, the first ones
    first, within PROMPT_CHARS; None when there are none."""
    text = ""
    for phrase in vocabulary or ():
        phrase = " ".join(str(phrase).split())
        if not phrase:
            continue
        sentence = phrase[0].upper() + phrase[1:] + "."
        if len(text) + len(sentence) + 1 > PROMPT_CHARS:
            break
        text = f"{text} {sentence}" if text else sentence
    return text or None


def _whisper_model(engine):
    """The faster-whisper model inside ovos-stt-plugin-fasterwhisper's engine, or None.

    The plugin loads the model (model folder, device, compute type, threads) but its
    execute() reads the WAV header as samples and takes no prompt nor voice-activity
    filter: the backend calls the loaded model itself with them."""
    model = getattr(engine, "engine", None)
    return model if type(model).__name__ == "WhisperModel" else None


def _whisper_transcribe(model, engine, pcm: bytes, lang: str, initial_prompt: Optional[str]) -> str:
    """One transcript of 16 kHz PCM. The voice-activity filter (on unless the plugin
    config's `vad_filter` is false) drops silence and noise before decoding: without it
    Whisper answers 3 s of silence with "You"."""
    import numpy as np
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    config = getattr(engine, "config", None) or {}
    segments, _ = model.transcribe(samples, language=(lang or "en").split("-")[0].lower(),
                                   beam_size=int(config.get("beam_size", 5)),
                                   vad_filter=config.get("vad_filter", True) is not False,
                                   condition_on_previous_text=False,
                                   initial_prompt=initial_prompt)
    text = " ".join(segment.text.strip() for segment in segments)
    return " ".join(_PUNCTUATION.sub("", text).lower().split())


def _default_data_path() -> str:
    from ..config import default_data_path
    return default_data_path()


def _positive_number(value, default: float, name: str) -> float:
    if value is None:
        return default
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < math.inf:
        return value
    LOG.warning(f"{name} must be a positive number, got {value!r}; using {default}")
    return default


def _offers_alternatives(engine) -> bool:
    """True when the plugin overrides OPM's default transcribe() (which wraps execute())."""
    try:
        from ovos_plugin_manager.templates.stt import STT, StreamingSTT
    except Exception:
        return False
    own = getattr(type(engine), "transcribe", None)
    return callable(own) and own not in (STT.transcribe, StreamingSTT.transcribe)


def best_alternatives(results, limit: int) -> List[str]:
    """Plugin results (list of (text, confidence) or of text) -> up to `limit` distinct
    non-empty texts, most confident first; [""] when there is none."""
    scored = []
    for position, item in enumerate(results or []):
        if isinstance(item, (tuple, list)):
            text, conf = (tuple(item) + (None, 0.0))[:2]
        else:
            text, conf = item, 0.0
        if text is None:
            continue
        text = " ".join(str(text).split())
        if not isinstance(conf, (int, float)) or isinstance(conf, bool) or conf != conf:
            conf = 0.0
        if text:
            scored.append((-float(conf), position, text))
    texts = []
    for _, _, text in sorted(scored):
        if text not in texts:
            texts.append(text)
        if len(texts) == max(1, limit):
            break
    return texts or [""]
