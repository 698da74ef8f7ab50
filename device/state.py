"""The skill's own bookkeeping, in a file of its own beside (not inside) settings.json.

ovos-core watches every skill's settings.json and reloads it on change; a reload that
lands during a write can leave a skill's settings empty. Internal state written there
made that likely and, when it happened, took the owner's settings with it. Here
settings.json changes only when the owner changes a setting.
"""
import copy
import json
import os
import threading
from typing import Any, Iterable

from ovos_utils.log import LOG

from ..backend.store import write_atomic


class StateFile:
    """A small JSON object on disk, replaced atomically on every `save`."""

    def __init__(self, path: str):
        self.path = path
        self._lock = threading.RLock()
        self._data = self._read()

    def _read(self) -> dict:
        try:
            with open(self.path) as f:
                data = json.load(f)
            if isinstance(data, dict):
                return data
            LOG.error(f"{self.path} is not a JSON object; starting from empty state")
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as e:
            LOG.error(f"unreadable state file {self.path}: {e}; starting from empty state")
        return {}

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            return copy.deepcopy(self._data.get(key, default))

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def set(self, key: str, value: Any) -> None:
        with self._lock:
            self._data[key] = copy.deepcopy(value)
            self.save()

    def pop(self, key: str) -> Any:
        with self._lock:
            value = self._data.pop(key, None)
            self.save()
            return value

    def adopt(self, legacy: dict, keys: Iterable[str]) -> bool:
        """Move `keys` out of an older settings dict (they used to live in settings.json);
        True if any moved, so the caller stores settings.json without them."""
        moved = False
        with self._lock:
            for key in keys:
                if key in legacy:
                    self._data.setdefault(key, legacy[key])
                    legacy.pop(key)
                    moved = True
            if moved:
                self.save()
        return moved

    def save(self) -> None:
        with self._lock:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            write_atomic(self.path, json.dumps(self._data, sort_keys=True).encode())
