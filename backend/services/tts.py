"""Private text-to-speech: an OPM TTS plugin speaks for the house's devices.

Configured the mycroft.conf way (the backend config's ``tts`` block)::

    {"module": "ovos-tts-plugin-espeakng",   # the default: offline, needs Debian's espeak-ng
     "ovos-tts-plugin-espeakng": {...plugin config, e.g. "voice"...},
     "lang": "",             # the engine's default language ("" = the backend's `lang`)
     "max_chars": 500,       # longest text accepted
     "cache_mb": 100,        # synthesized phrases kept on disk (least recently used go first)
     "max_concurrent": 1, "max_per_device": 1, "max_queued": 1, "queue_seconds": 5,
     "timeout_seconds": 30}  # the longest one synthesis may take

This class is the engine as a worker process runs it (services/worker.py): the plugin
is loaded once, on first use, and every synthesis goes through `synthesize`. The
serving process keeps the phrase cache (services/tts_cache.py) and the admission limits
(services/speech.py).
"""
import inspect
import os
import tempfile
import threading
import time
from typing import Optional, Tuple

from ovos_utils.log import LOG

from ..errors import BadRequest, ServiceUnavailable

DEFAULT_MODULE = "ovos-tts-plugin-espeakng"
RETRY_LOAD_AFTER = 30.0  # seconds a failed plugin load is remembered before trying again


class TextToSpeech:
    """Synthesizes text with the configured OPM TTS plugin."""

    def __init__(self, config: dict):
        config = dict(config or {})
        self._config = config
        self.module = str(config.get("module") or DEFAULT_MODULE).strip()
        self.lang = str(config.get("lang") or "en-us").strip().lower()
        self._engine = None
        self._load_error: Optional[ServiceUnavailable] = None
        self._load_failed_at = 0.0
        self._lock = threading.Lock()
        self.load_seconds: Optional[float] = None

    def load(self):
        """Load the plugin now (idempotent); ServiceUnavailable when it cannot be. A failure
        is remembered for RETRY_LOAD_AFTER seconds, then loading is tried again."""
        with self._lock:
            if self._engine is not None:
                return self._engine
            if self._load_error is not None and \
                    time.monotonic() - self._load_failed_at < RETRY_LOAD_AFTER:
                raise ServiceUnavailable(self._load_error.message)
            try:
                self._engine = self._create_engine()
            except ServiceUnavailable as e:
                self._load_error, self._load_failed_at = e, time.monotonic()
                raise
            return self._engine

    def _create_engine(self):
        module = self.module
        plugin_config = self._config.get(module) or {}
        if not isinstance(plugin_config, dict):
            raise ServiceUnavailable(f"the configuration of TTS plugin '{module}' must be an object")
        plugin_config = {**plugin_config, "module": module}
        plugin_config.setdefault("lang", self.lang)
        started = time.monotonic()
        try:
            from ovos_plugin_manager.tts import load_tts_plugin
            plugin_class = load_tts_plugin(module)
        except Exception as e:
            LOG.exception(f"looking up TTS plugin '{module}' failed")
            raise ServiceUnavailable(f"TTS plugin '{module}' could not be looked up: {e}") from e
        if plugin_class is None:
            LOG.error(f"TTS plugin '{module}' is not installed")
            raise ServiceUnavailable(f"TTS plugin '{module}' is not installed "
                                     f"(pip install {module}, or configure tts.module)")
        try:
            engine = plugin_class(config=plugin_config)
        except Exception as e:
            LOG.exception(f"TTS plugin '{module}' failed to load")
            raise ServiceUnavailable(f"TTS plugin '{module}' failed to load: {e}") from e
        self.load_seconds = time.monotonic() - started
        LOG.info(f"TTS plugin '{module}' loaded in {self.load_seconds:.2f} s")
        return engine

    def synthesize(self, text: str, lang: str, voice: str = "") -> Tuple[bytes, str]:
        """(audio bytes, file extension) of `text` spoken in `lang` by `voice` ("" = the
        plugin's default). ServiceUnavailable when the plugin cannot load or gives no audio."""
        engine = self.load()
        extension = str(getattr(engine, "audio_ext", "") or "wav").lstrip(".")
        with tempfile.TemporaryDirectory(prefix="personal-backend-tts-") as folder:
            path = os.path.join(folder, f"speech.{extension}")
            written = self._get_tts(engine, text, path, lang, voice) or path
            try:
                with open(written, "rb") as f:
                    audio = f.read()
            except OSError as e:
                raise ServiceUnavailable(f"TTS plugin '{self.module}' wrote no audio: {e}") from e
        if not audio:
            raise ServiceUnavailable(f"TTS plugin '{self.module}' produced no audio")
        return audio, extension

    def _get_tts(self, engine, text: str, path: str, lang: str, voice: str) -> Optional[str]:
        """Call the plugin's get_tts with the language and voice it accepts.

        OPM's interface takes `lang` and `voice` keywords; older plugins (espeak-ng's among
        them) take neither and speak `engine.lang`, which is then set for the call (the
        worker runs one call at a time)."""
        accepted = _keywords(engine.get_tts)
        kwargs = {}
        if "lang" in accepted:
            kwargs["lang"] = lang
        else:
            engine.lang = lang
        if voice and "voice" in accepted:
            kwargs["voice"] = voice
        try:
            result = engine.get_tts(text, path, **kwargs)
        except Exception as e:
            LOG.exception(f"TTS plugin '{self.module}' failed")
            raise ServiceUnavailable(f"TTS plugin '{self.module}' failed: {type(e).__name__}: {e}") from e
        written = result[0] if isinstance(result, (tuple, list)) and result else result
        return str(written) if written else None


def _keywords(function) -> set:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return set()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return {"lang", "voice"}
    return {p.name for p in parameters}


def check_text(text: Optional[str], max_chars: int) -> str:
    """The text to speak, whitespace folded; BadRequest when missing or too long."""
    text = " ".join((text or "").split())
    if not text:
        raise BadRequest("the utterance to speak is missing (?utterance=...)")
    if len(text) > max_chars:
        raise BadRequest(f"the utterance is longer than the {max_chars} characters accepted")
    return text
