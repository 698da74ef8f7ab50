"""Private speech-to-text: devices upload audio, a local OPM STT plugin transcribes it.

Configured the mycroft.conf way (the backend config's ``stt`` block)::

    {"module": "ovos-stt-plugin-pocketsphinx",          # the default: offline, bundled model
     "ovos-stt-plugin-pocketsphinx": {...plugin config...},
     "lang": "en-us",        # optional: default language, also given to the plugin at load
     "thread_safe": false,   # optional: true lets calls run in parallel (stateless plugins)
     "max_seconds": 120}     # optional: longest accepted utterance

Uploads (FLAC as Mycroft devices send, WAV, or anything libsndfile reads, at any
rate, width and channel count) are decoded with ``soundfile`` and converted to
16 kHz 16-bit mono, the format every OPM STT plugin accepts. The plugin is loaded
once, on first use (or by ``load()``), and reused.
"""
import io
import math
import threading
import time
from fractions import Fraction
from typing import TYPE_CHECKING, List, Optional

from ovos_utils.log import LOG

from ..errors import BadRequest, ServiceUnavailable

# numpy is imported where audio is decoded: importing it at start costs 0.1 s and 15 MB
# for routes many servers never serve
if TYPE_CHECKING:
    import numpy as np

DEFAULT_MODULE = "ovos-stt-plugin-pocketsphinx"
SAMPLE_RATE = 16000      # what the plugins get: 16 kHz ...
SAMPLE_WIDTH = 2         # ... 16-bit signed little-endian ...
MIN_INPUT_RATE = 4000    # ... mono; input rates outside these bounds are not speech audio
MAX_INPUT_RATE = 192000
MAX_CHANNELS = 32
MAX_SECONDS = 120        # default longest utterance; bounds the memory a request can take
RETRY_LOAD_AFTER = 30.0  # seconds a failed plugin load is remembered before trying again
_READ_BLOCK = 1024       # frames per read: small, so a decode error at the end loses little
_RESAMPLE_ZERO_CROSSINGS = 16
_RESAMPLE_CHUNK = 8192


# ---------------------------------------------------------------- decoding

def decode_audio(data: bytes, max_seconds: float = MAX_SECONDS) -> bytes:
    """FLAC/WAV/... bytes -> raw 16 kHz 16-bit mono little-endian PCM.

    Raises BadRequest with a message saying what is wrong when the bytes are not
    decodable audio: empty, unknown format, corrupt or truncated stream, absurd
    header values, no samples, or longer than ``max_seconds``.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BadRequest("the audio must be sent as the request body (FLAC or WAV bytes)")
    data = bytes(data)
    if not data:
        raise BadRequest("the audio is empty")
    try:
        import numpy as np
        import soundfile
    except Exception as e:  # the wheel bundles libsndfile; a broken install is a server problem
        LOG.error(f"soundfile cannot be imported: {e!r}")
        raise ServiceUnavailable("audio decoding is unavailable: the soundfile package is missing") from e

    try:
        sound = soundfile.SoundFile(io.BytesIO(data))
    except Exception as e:
        raise BadRequest(f"the audio cannot be decoded; send FLAC or WAV ({_reason(e)})") from e
    with sound:
        rate, channels, declared = sound.samplerate, sound.channels, sound.frames
        if not MIN_INPUT_RATE <= rate <= MAX_INPUT_RATE:
            raise BadRequest(f"the audio declares an unsupported sample rate of {rate} Hz "
                             f"(accepted: {MIN_INPUT_RATE}-{MAX_INPUT_RATE} Hz)")
        if not 1 <= channels <= MAX_CHANNELS:
            raise BadRequest(f"the audio declares {channels} channels (accepted: 1-{MAX_CHANNELS})")
        # a FLAC stream may leave its length unknown (0 in STREAMINFO): libsndfile then
        # reports 2**63-1 frames, and fails reading the stream's very end
        length_known = 0 < declared < 2 ** 62
        fmt = sound.format
        max_frames = int(max_seconds * rate)
        blocks, frames, error = [], 0, None
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
            blocks.append(block.mean(axis=1) if channels > 1 else block[:, 0])
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
    samples = np.concatenate(blocks)
    samples = resample(samples, rate, SAMPLE_RATE)
    pcm = np.clip(np.rint(samples * 32768.0), -32768, 32767).astype("<i2")
    return pcm.tobytes()


def _reason(error: Exception) -> str:
    text = str(error)
    # libsndfile messages start with "Error opening <_io.BytesIO object at 0x...>: "
    return text.split(": ", 1)[1] if text.startswith("Error opening") and ": " in text else text


def resample(samples: "np.ndarray", src_rate: int, dst_rate: int) -> "np.ndarray":
    """Band-limited (windowed-sinc, polyphase) resampling of a mono float signal.

    Downsampling low-passes below the new Nyquist frequency, so high frequencies do
    not alias into the speech band. Memory stays linear in the signal length.
    """
    import numpy as np
    samples = np.asarray(samples, dtype=np.float32)
    if src_rate == dst_rate or not len(samples):
        return samples
    ratio = Fraction(dst_rate, src_rate)            # output samples per input sample
    phases, step = ratio.numerator, ratio.denominator  # output j sits at input time j*step/phases
    # cutoff in cycles per input sample: below both Nyquist frequencies, with a little rolloff
    cutoff = 0.5 * min(1.0, dst_rate / src_rate) * 0.94
    half = int(math.ceil(_RESAMPLE_ZERO_CROSSINGS / (2 * cutoff)))  # kernel half-width, input samples
    offsets = np.arange(-half + 1, half + 1)
    # one weight row per fractional phase of the output positions
    frac = (np.arange(phases) * step % phases) / phases
    dist = frac[:, None] - offsets[None, :]
    window = 0.5 + 0.5 * np.cos(np.pi * np.clip(dist / half, -1.0, 1.0))  # Hann
    weights = (2 * cutoff * np.sinc(2 * cutoff * dist) * window).astype(np.float32)
    weights /= weights.sum(axis=1, keepdims=True)   # unity gain at DC for every phase

    n_out = int(len(samples) * dst_rate // src_rate) or 1
    padded = np.concatenate([np.zeros(half, np.float32), samples, np.zeros(half + 1, np.float32)])
    out = np.empty(n_out, dtype=np.float32)
    for start in range(0, n_out, _RESAMPLE_CHUNK):
        j = np.arange(start, min(start + _RESAMPLE_CHUNK, n_out), dtype=np.int64)
        base = j * step // phases                   # the input sample at or before output j
        idx = base[:, None] + offsets[None, :] + half
        out[start:start + len(j)] = np.einsum("ij,ij->i", padded[idx], weights[j % phases])
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


# ---------------------------------------------------------------- service

class SpeechToText:
    """Transcribes uploaded audio with the configured OPM STT plugin."""

    def __init__(self, config: dict):
        config = dict(config or {})
        self._config = config
        self._module = str(config.get("module") or DEFAULT_MODULE).strip()
        self._lang = str(config.get("lang") or "").strip() or None
        self._max_seconds = _positive_number(config.get("max_seconds"), MAX_SECONDS, "stt.max_seconds")
        self._engine = None
        self._load_error: Optional[ServiceUnavailable] = None
        self._load_failed_at = 0.0
        self._load_lock = threading.Lock()
        self._call_lock: Optional[threading.Lock] = None  # set at load unless thread-safe
        self.load_seconds: Optional[float] = None

    @property
    def module(self) -> str:
        """The configured plugin's name (its OPM entry point)."""
        return self._module

    @property
    def loaded(self) -> bool:
        return self._engine is not None

    def load(self):
        """Load the plugin now (idempotent) and return it; ServiceUnavailable on failure.

        Called by the first transcription; call it at startup to pay the load time early.
        A failure is remembered for RETRY_LOAD_AFTER seconds, then loading is retried.
        """
        if self._engine is not None:
            return self._engine
        with self._load_lock:
            if self._engine is not None:
                return self._engine
            if self._load_error is not None and \
                    time.monotonic() - self._load_failed_at < RETRY_LOAD_AFTER:
                raise ServiceUnavailable(self._load_error.message)
            try:
                engine = self._create_engine()
            except ServiceUnavailable as e:
                self._load_error, self._load_failed_at = e, time.monotonic()
                raise
            self._call_lock = None if self._is_thread_safe(engine) else threading.Lock()
            self._engine, self._load_error = engine, None
            return engine

    def _create_engine(self):
        module = self._module
        plugin_config = self._config.get(module) or {}
        if not isinstance(plugin_config, dict):
            raise ServiceUnavailable(f"the configuration of STT plugin '{module}' must be an object")
        plugin_config = dict(plugin_config)
        plugin_config.setdefault("module", module)
        if self._lang:
            plugin_config.setdefault("lang", self._lang)
        started = time.monotonic()
        try:
            from ovos_plugin_manager.stt import load_stt_plugin
            plugin_class = load_stt_plugin(module)
        except Exception as e:
            LOG.exception(f"looking up STT plugin '{module}' failed")
            raise ServiceUnavailable(f"STT plugin '{module}' could not be looked up: {e}") from e
        if plugin_class is None:
            LOG.error(f"STT plugin '{module}' is not installed")
            raise ServiceUnavailable(f"STT plugin '{module}' is not installed "
                                     f"(pip install {module}, or configure stt.module)")
        try:
            engine = plugin_class(plugin_config)
        except Exception as e:
            LOG.exception(f"STT plugin '{module}' failed to load")
            raise ServiceUnavailable(f"STT plugin '{module}' failed to load: {e}") from e
        self.load_seconds = time.monotonic() - started
        LOG.info(f"STT plugin '{module}' loaded in {self.load_seconds:.2f} s")
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

    def transcribe(self, audio: bytes, lang: str, limit: int = 1) -> List[str]:
        """Up to `limit` transcriptions of `audio` (FLAC/WAV bytes), best first.

        Returns [""] when nothing was recognised. BadRequest: undecodable audio or
        invalid limit; ServiceUnavailable: the plugin cannot be loaded or failed.
        """
        if isinstance(limit, bool) or not isinstance(limit, int):
            try:
                limit = int(limit)
            except (TypeError, ValueError):
                raise BadRequest(f"limit must be a positive integer, got {limit!r}") from None
        limit = max(1, limit)
        lang = (lang or "").strip() or self._lang
        pcm = decode_audio(audio, self._max_seconds)
        engine = self.load()
        audio_data = to_audio_data(pcm)
        started = time.monotonic()
        if self._call_lock is None:
            results = self._run(engine, audio_data, pcm, lang)
        else:
            with self._call_lock:
                results = self._run(engine, audio_data, pcm, lang)
        LOG.debug(f"STT '{self._module}': {len(pcm) / (SAMPLE_RATE * SAMPLE_WIDTH):.2f} s of audio "
                  f"transcribed in {time.monotonic() - started:.2f} s")
        return best_alternatives(results, limit)

    def _run(self, engine, audio_data, pcm: bytes, lang: Optional[str]) -> list:
        try:
            if getattr(engine, "can_stream", False) and hasattr(engine, "stream_start"):
                # OPM streaming plugins ignore execute()'s audio: feed the stream instead
                engine.stream_start(lang)
                chunk = SAMPLE_RATE * SAMPLE_WIDTH // 10
                for i in range(0, len(pcm), chunk):
                    engine.stream_data(pcm[i:i + chunk])
                return [(engine.stream_stop(), 1.0)]
            if _offers_alternatives(engine):
                return list(engine.transcribe(audio_data, lang) or [])
            return [(engine.execute(audio_data, lang), 1.0)]
        except Exception as e:
            # speech_recognition's UnknownValueError means "heard nothing intelligible"
            if type(e).__name__ == "UnknownValueError":
                return []
            LOG.exception(f"STT plugin '{self._module}' failed to transcribe")
            raise ServiceUnavailable(f"STT plugin '{self._module}' failed to transcribe the audio: "
                                     f"{type(e).__name__}: {e}") from e


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
