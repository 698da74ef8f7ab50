"""The house's speech engines as the serving process sees them: admission limits in
front of worker processes (services/worker.py), and for TTS the phrase cache.

Every route that transcribes or synthesizes goes through `Transcriber` or `Synthesizer`:
they never run a plugin in the serving process, so speech cannot stall device polls or
(inside ovos-core) other skills, and an engine's memory stays in its worker.
"""
from typing import List, Optional, Sequence, Tuple

from .stt import MAX_CONCURRENT, MAX_PER_DEVICE, MAX_QUEUED, QUEUE_SECONDS, Admission
from .stt_models import WHISPER as DEFAULT_STT
from .tts import DEFAULT_MODULE as DEFAULT_TTS
from .tts import check_text
from .tts_cache import PhraseCache, phrase_key
from .worker import EnginePool

STT_TIMEOUT = 120.0  # seconds one transcription may take in its worker (stt.timeout_seconds)
TTS_TIMEOUT = 30.0   # ... and one synthesis (tts.timeout_seconds)
MAX_CHARS = 500
CACHE_MB = 100


def _admission(config: dict) -> Admission:
    return Admission(config.get("max_concurrent", MAX_CONCURRENT),
                     config.get("max_per_device", MAX_PER_DEVICE),
                     config.get("max_queued", MAX_QUEUED),
                     config.get("queue_seconds", QUEUE_SECONDS))


class _Engine:
    """What both facades share: the config block, admission, a pool of workers."""

    kind = ""
    default_module = ""
    default_timeout = 0.0

    def __init__(self, config: dict, *engine_args):
        self.config = dict(config or {})
        self.module = str(self.config.get("module") or self.default_module).strip()
        self.admission = _admission(self.config)
        self.pool = EnginePool(self.kind, (self.config, *engine_args), size=self.admission.running,
                               timeout=float(self.config.get("timeout_seconds") or self.default_timeout))

    def close(self) -> None:
        self.pool.close()


class Transcriber(_Engine):
    """Speech-to-text for the routes: `with t.admission.slot(client): t.transcribe(...)`."""

    kind, default_module, default_timeout = "stt", DEFAULT_STT, STT_TIMEOUT

    def __init__(self, config: dict, data_path: str):
        super().__init__(config, data_path)

    def transcribe(self, audio: bytes, lang: str, limit=1, vocabulary: Sequence[str] = ()) -> List[str]:
        """Up to `limit` transcripts of `audio` (FLAC/WAV bytes), best first ([""]: nothing
        understood), the engine biased towards the house's `vocabulary`. BadRequest for bad
        audio or limit; ServiceUnavailable when the engine cannot load, fails, dies or times out."""
        return self.pool.call("transcribe", bytes(audio), lang, limit, list(vocabulary))

    def detect_language(self, audio: bytes, valid_langs: List[str]) -> str:
        """The language spoken in `audio`, among `valid_langs` (the engine's own detection)."""
        return self.pool.call("detect_language", bytes(audio), list(valid_langs))

    def status(self, lang: Optional[str] = None) -> dict:
        """The engine, model and fallback reason for `lang` (stt.py SpeechToText.status),
        from the worker; no engine is loaded to answer."""
        return self.pool.call("status", lang)


class Synthesizer(_Engine):
    """Text-to-speech for the routes: `speak()` answers from the cache or a worker."""

    kind, default_module, default_timeout = "tts", DEFAULT_TTS, TTS_TIMEOUT

    def __init__(self, config: dict, cache_folder: str, default_lang: str):
        config = dict(config or {})
        config["lang"] = str(config.get("lang") or default_lang)
        super().__init__(config)
        self.lang = config["lang"]
        self.max_chars = int(self.config.get("max_chars") or MAX_CHARS)
        self.cache = PhraseCache(cache_folder, int(float(self.config.get("cache_mb", CACHE_MB)) * 1024 * 1024))
        self.synthesized = 0  # syntheses run by a worker (cache misses), for /status and tests

    def key(self, text: str, lang: str, voice: str) -> str:
        return phrase_key(self.module, self.config.get(self.module) or {}, lang, voice, text)

    def cached(self, text: str, lang: str, voice: str = "") -> Optional[Tuple[bytes, str]]:
        """(audio, extension) of a phrase already synthesized, without an engine."""
        return self.cache.get(self.key(check_text(text, self.max_chars), lang, voice))

    def synthesize(self, text: str, lang: str, voice: str = "") -> Tuple[bytes, str]:
        """(audio, extension) of `text`: from the cache, or synthesized by a worker and
        kept. The caller holds an admission slot for a miss (see `cached`)."""
        text = check_text(text, self.max_chars)
        key = self.key(text, lang, voice)
        found = self.cache.get(key)
        if found is not None:
            return found
        audio, extension = self.pool.call("synthesize", text, lang, voice)
        self.synthesized += 1
        self.cache.put(key, audio, extension)
        return audio, extension

    def status(self) -> dict:
        """What ovos-tts-server's /status says, plus the cache's figures."""
        plugin_config = self.config.get(self.module) or {}
        return {"plugin": self.module, "langs": [self.lang], "default_lang": self.lang,
                "default_voice": str(plugin_config.get("voice") or "default"),
                "cache": {"phrases": len(self.cache), "bytes": self.cache.size(),
                          "hits": self.cache.hits},
                "synthesized": self.synthesized}
