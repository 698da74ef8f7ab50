"""Limits on failed attempts per client address: wrong admin keys, refused activations,
failed logins to the admin page.

Only failures are counted: a client that succeeds is never slowed down (a thousand
pairings a minute from one address all go through). A client that failed `limit` times
within `window` seconds gets 429 until the oldest of those failures leaves the window,
instead of the refusal; what is right is always accepted, even from an address that
keeps failing:
* activations: the 256-bit pairing token cannot be guessed;
* the admin key (`GuessThrottle`, also the admin page's login): an address is no proof
  of who is asking (every process and browser page on the owner's machine is 127.0.0.1),
  so refusing the right key because of an address's failures let anyone lock the owner
  out. Wrong keys are also limited in total (`OVERALL`), so many addresses together
  get no more answers than one; a request with no key at all is not a guess.

Windows follow `time.monotonic`: a wall-clock step (NTP, a dead RTC battery) neither
extends a refusal nor cuts it short.

Kept in memory and bounded: at most `limit` timestamps per address and `max_clients`
addresses (the least recently failing are forgotten first). A restart forgets
everything, which only helps the owner.
"""
import math
import threading
import time
from collections import OrderedDict, deque
from typing import Deque

from flask import Response, current_app, jsonify, request

# name -> (failures allowed, per this many seconds), per client address
LIMITS = {
    # POST /device/activate refused: unknown, expired or malformed (state, token); a
    # device waiting for the owner's approval is not failing and is never counted
    "activation": (20, 60),
    # the admin API called with a wrong key (a request without one is not counted)
    "admin_key": (20, 60),
    # a speech route called with an unknown speech URL secret (speech_access.py)
    "speech_key": (20, 60),
}
# name -> failures allowed from all addresses together, per the name's window
OVERALL = {"admin_key": 100}
MAX_CLIENTS = 4096


class FailureLimiter:
    """At most `limit` failures per client within `window` seconds (a sliding window)."""

    def __init__(self, limit: int, window: float, max_clients: int = MAX_CLIENTS):
        self.limit, self.window, self.max_clients = limit, window, max_clients
        self._failures: "OrderedDict[str, Deque[float]]" = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int:
        """Whole seconds `client` must wait before trying again; 0: it may try now."""
        with self._lock:
            times = self._failures.get(client)
            if times is None or len(times) < self.limit:
                return 0
            wait = self.window - (time.monotonic() - times[0])
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, client: str) -> None:
        with self._lock:
            times = self._failures.pop(client, None) or deque(maxlen=self.limit)
            times.append(time.monotonic())
            self._failures[client] = times  # now the most recent
            while len(self._failures) > self.max_clients:
                self._failures.popitem(last=False)

    def __len__(self) -> int:
        """How many addresses are remembered (at most `max_clients`)."""
        return len(self._failures)


class GuessThrottle:
    """Wrong guesses of one secret: at most `per_client` per client and `overall` from
    everyone within `window` seconds (two FailureLimiters).

    It only ever refuses wrong guesses: the caller compares the secret first and lets
    the right one in whatever the counts, so neither a process sharing the owner's
    address nor a crowd of addresses can lock the owner out. Nothing is forgiven when
    someone gets in: the right key needs no forgiveness, and an intruder sharing the
    owner's address would get fresh guesses at each of the owner's logins."""

    EVERYONE = "*"

    def __init__(self, per_client: int, overall: int, window: float):
        self._clients = FailureLimiter(per_client, window)
        self._all = FailureLimiter(overall, window, max_clients=1)

    def retry_after(self, client: str) -> int:
        """Seconds before a wrong guess from `client` is answered again (0: now)."""
        return max(self._clients.retry_after(client), self._all.retry_after(self.EVERYONE))

    def failed(self, client: str) -> None:
        self._clients.failed(client)
        self._all.failed(self.EVERYONE)


def _made_once(name: str, make):
    """The app's limiter or throttle `name`, made by `make()` on first use."""
    limiters = current_app.extensions.setdefault("personal_backend_limits", {})
    found = limiters.get(name)
    if found is None:
        found = limiters.setdefault(name, make())
    return found


def limiter(name: str) -> FailureLimiter:
    """The app's limiter `name` (one of LIMITS), made on first use."""
    return _made_once(name, lambda: FailureLimiter(*LIMITS[name]))


def throttle(name: str) -> GuessThrottle:
    """The app's throttle of wrong `name` guesses (LIMITS per address, OVERALL in all)."""
    per_client, window = LIMITS[name]
    return _made_once(f"{name}:guesses", lambda: GuessThrottle(per_client, OVERALL[name], window))


def client_address() -> str:
    """The peer address (the server trusts no X-Forwarded-For: see server.py)."""
    return request.remote_addr or "?"


def too_many(wait: int, message: str, plain: bool = False) -> Response:
    """The 429 answer, JSON `{"error": ...}` unless the client needs plain text."""
    response = Response(message, mimetype="text/plain") if plain else jsonify({"error": message})
    response.status_code = 429
    response.headers["Retry-After"] = str(wait)
    return response
