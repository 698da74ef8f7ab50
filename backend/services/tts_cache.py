"""The phrases the house hears every day, synthesized once.

A device asks for the same sentences again and again ("the time is ...", "ok", a
skill's greetings): each answer is kept on disk under a key naming everything that
shapes the audio (plugin, its configuration, language, voice, text), so a repeat costs
a file read instead of a synthesis, and the cache follows a change of engine or voice
by itself. The folder is bounded in size: the least recently used phrases go first.

This is a disposable cache, not household data: it lives in its own folder of the data
path (not in the store, not in backups), a lost or emptied file only costs one
synthesis, and files are replaced without fsync (an empty file left by a crash is a
miss). Only the serving process writes it.
"""
import hashlib
import json
import os
import threading
from collections import OrderedDict
from typing import Optional, Tuple

from ovos_utils.log import LOG

EXTENSION_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")


def phrase_key(module: str, plugin_config: dict, lang: str, voice: str, text: str) -> str:
    """The cache key of one synthesis: a hash of everything that shapes its audio."""
    shape = json.dumps([module, plugin_config, lang, voice, text], sort_keys=True, default=str)
    return hashlib.sha256(shape.encode("utf-8", "surrogatepass")).hexdigest()


class PhraseCache:
    """Synthesized audio by key, at most `max_bytes` on disk, least recently used out first."""

    def __init__(self, folder: str, max_bytes: int):
        self.folder, self.max_bytes = folder, max_bytes
        self._lock = threading.Lock()
        # key -> (extension, size), oldest use first
        self._entries: "OrderedDict[str, Tuple[str, int]]" = OrderedDict()
        self._total = 0
        self.hits = 0
        os.makedirs(folder, mode=0o700, exist_ok=True)
        self._scan()

    def _scan(self) -> None:
        """Learn what a previous run left, oldest use (mtime) first."""
        found = []
        for entry in os.scandir(self.folder):
            key, _, extension = entry.name.partition(".")
            if entry.is_file() and key and extension.isalnum():
                stat = entry.stat()
                found.append((stat.st_mtime, key, extension, stat.st_size))
        for _, key, extension, size in sorted(found):
            self._entries[key] = (extension, size)
            self._total += size
        self._evict()

    def get(self, key: str) -> Optional[Tuple[bytes, str]]:
        """(audio, extension) stored under `key`, or None; a hit becomes the most recent."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
        extension = entry[0]
        path = self._path(key, extension)
        try:
            with open(path, "rb") as f:
                audio = f.read()
            os.utime(path)  # the order survives a restart
        except OSError:
            audio = b""
        if not audio:
            self._drop(key)
            return None
        with self._lock:
            self.hits += 1
        return audio, extension

    def put(self, key: str, audio: bytes, extension: str) -> None:
        """Keep `audio` under `key`; older phrases go until the cache fits its bound. A
        phrase larger than the whole bound is not kept. A write that fails is only logged."""
        extension = extension.lower()
        if not audio or len(audio) > self.max_bytes or not extension or \
                not set(extension) <= EXTENSION_CHARS:
            return
        path = self._path(key, extension)
        tmp = f"{path}.tmp-{os.getpid()}-{threading.get_ident()}"
        try:
            with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
                f.write(audio)
            os.replace(tmp, path)
        except OSError as e:
            LOG.warning(f"the TTS cache could not keep a phrase: {e.strerror or e}")
            try:
                os.unlink(tmp)
            except OSError:
                pass
            return
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None and previous[0] != extension:
                self._unlink(key, previous[0])
            self._total += len(audio) - (previous[1] if previous else 0)
            self._entries[key] = (extension, len(audio))
            self._evict()

    def size(self) -> int:
        """Bytes on disk, in all."""
        with self._lock:
            return self._total

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _path(self, key: str, extension: str) -> str:
        return os.path.join(self.folder, f"{key}.{extension}")

    def _unlink(self, key: str, extension: str) -> None:
        try:
            os.unlink(self._path(key, extension))
        except OSError:
            pass

    def _evict(self) -> None:
        # called with the lock held (or before the cache is shared)
        while self._total > self.max_bytes and self._entries:
            key, (extension, size) = self._entries.popitem(last=False)
            self._total -= size
            self._unlink(key, extension)

    def _drop(self, key: str) -> None:
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None:
                self._total -= entry[1]
                self._unlink(key, entry[0])
