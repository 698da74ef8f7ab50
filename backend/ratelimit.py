"""Limits on failed attempts per client address: wrong admin keys, refused activations,
failed logins to the admin page.

Only failures are counted: a client that succeeds is never slowed down (a thousand
pairings a minute from one address all go through). A client that failed `limit` times
within `window` seconds gets 429 until the oldest of those failures leaves the window:
* for the admin key (which an owner may have chosen weak), before the key is looked at,
  so a refused client cannot test guesses, and the right key waits too;
* for activations, instead of the refusal: the 256-bit pairing token cannot be guessed,
  so a valid one is always accepted, even from an address that keeps failing.

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
    # the admin API called with a missing or wrong key
    "admin_key": (20, 60),
}
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

    def forgive(self, client: str) -> None:
        """Forget `client`'s failures (it proved it knows the secret)."""
        with self._lock:
            self._failures.pop(client, None)


def limiter(name: str) -> FailureLimiter:
    """The app's limiter `name` (one of LIMITS), made on first use."""
    limiters = current_app.extensions.setdefault("personal_backend_limits", {})
    found = limiters.get(name)
    if found is None:
        found = limiters.setdefault(name, FailureLimiter(*LIMITS[name]))
    return found


def client_address() -> str:
    """The peer address (the server trusts no X-Forwarded-For: see server.py)."""
    return request.remote_addr or "?"


def too_many(wait: int, message: str, plain: bool = False) -> Response:
    """The 429 answer, JSON `{"error": ...}` unless the client needs plain text."""
    response = Response(message, mimetype="text/plain") if plain else jsonify({"error": message})
    response.status_code = 429
    response.headers["Retry-After"] = str(wait)
    return response
