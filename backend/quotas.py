"""Per-device quotas (the `quotas` config block): what one device may make this backend
keep or spend, so that a single device, broken or hostile, cannot fill the disk, the
memory or the owner's upstream allowance for the whole house.

Two refusals, both JSON naming the config key that sets the limit:
* 413 when one item is too large by itself (a manifest of 200,000 skills);
* 429 when the device's share is used up (its metrics, recordings, upstream calls):
  it frees itself as retention deletes old records or the hour passes.
"""
import json
import threading
import time
from collections import deque
from typing import Callable, Deque, Dict

from .config import DEFAULTS
from .errors import BackendError, TooManyRequests

# the limits a caller that passes none gets (the in-process device, tests of the domain)
DEFAULT_QUOTAS: Dict[str, int] = dict(DEFAULTS["quotas"])
HOUR = 3600.0
DAY = 86400.0


class TooLarge(BackendError):
    """One item is larger than its quota allows."""

    status = 413


def json_size(value) -> int:
    """Bytes `value` takes as compact JSON (what it costs on disk, near enough)."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def check_count(count: int, quotas: Dict[str, int], key: str, what: str) -> None:
    """TooLarge when one item holds more than `quotas[key]` entries."""
    if count > quotas[key]:
        raise TooLarge(f"{what} has {count} entries; at most {quotas[key]} are kept "
                       f"(quotas.{key})")


def check_kb(size: int, quotas: Dict[str, int], key: str, what: str) -> None:
    """TooLarge when one item of `size` bytes is over `quotas[key]` KiB."""
    if size > quotas[key] * 1024:
        raise TooLarge(f"{what} is {size // 1024 + 1} KiB; at most {quotas[key]} KiB are kept "
                       f"(quotas.{key})")


def full(what: str, key: str, limit, unit: str = "") -> TooManyRequests:
    """The 429 of a device whose share of something is used up."""
    return TooManyRequests(f"this device's {what} reached its quota of {limit}{unit} "
                           f"(quotas.{key}); older ones are deleted as they expire")


class HourlyBudget:
    """At most `quotas[key]` events per device within any hour (a sliding window of
    monotonic times, so a clock step changes nothing). In memory, at most the limit per
    device; devices idle for an hour are forgotten. The limit is read at each call, so
    an admin config change applies at once."""

    def __init__(self, config: dict, key: str, what: str,
                 clock: Callable[[], float] = time.monotonic):
        self._config, self._key, self._what, self._clock = config, key, what, clock
        self._events: Dict[str, Deque[float]] = {}
        self._lock = threading.Lock()

    def charge(self, uuid: str) -> None:
        """Count one event of device `uuid`; TooManyRequests (429) when its hour is full."""
        now, limit = self._clock(), self._config["quotas"][self._key]
        with self._lock:
            self._forget_idle(now)
            events = self._events.setdefault(uuid, deque())
            if len(events) >= limit:
                wait = int(HOUR - (now - events[-limit])) + 1
                raise TooManyRequests(f"this device made {len(events)} {self._what} in the last "
                                      f"hour, its quota (quotas.{self._key}); try again in {wait} s")
            events.append(now)

    def _forget_idle(self, now: float) -> None:
        """Drop the events that left the window (the devices are few: a pass costs little)."""
        for uuid in list(self._events):
            events = self._events[uuid]
            while events and now - events[0] >= HOUR:
                events.popleft()
            if not events:
                del self._events[uuid]
