"""Calling third-party HTTP APIs for devices: one cached session, failures as clear errors.

Offline first: nothing leaves the machine unless the owner configured a key for the
service. Answers are cached (requests-cache `CachedSession`, never a process-wide
`install_cache`: other skills share the process) so that polling devices do not burn
the owner's quota, and the last good answer (up to a day old) is served while the
upstream is unreachable, failing or over quota.

Secrets: the API key travels as a query parameter (both OWM and Wolfram want it so);
requests' exception texts contain the full URL, so no exception text is ever logged
or returned as is: messages are built from the exception type, with the key scrubbed.
That is also why the stale fallback is ours and not requests-cache's `stale_if_error`
(which logs the failed request's exception, URL and key included, at WARNING).
"""
import os
import threading
from contextlib import contextmanager
from datetime import timedelta
from os.path import join
from typing import TYPE_CHECKING, Callable, Dict, Iterable, Optional
from urllib.parse import urlsplit

from ovos_utils.log import LOG

from ..errors import BackendError, ServiceUnavailable, TooManyRequests, UpstreamError
from ..store import Store

# requests and requests-cache are imported when first needed (the first upstream call):
# importing them at start costs ~0.2 s and several MB that a server without upstream keys
# never uses
if TYPE_CHECKING:
    import requests
    from requests_cache import CachedSession

USER_AGENT = "ovos-personal-backend"
# a stale answer is better than none while the upstream is down, but not a week-old forecast
STALE_SECONDS = 24 * 3600
# cached answers older than this are dropped at start (distinct questions add rows)
KEEP_FOR = timedelta(days=2)
KEY_PARAMS = ("appid", "APPID")
MESSAGE_LIMIT = 200


class SharedSession:
    """The session every upstream service shares (one sqlite file, one lock), built on
    first use: until an owner configures a service and a device asks, nothing is opened."""

    def __init__(self, config: dict, store: Store):
        self.config = config
        self.store = store
        self._session: Optional["CachedSession"] = None
        self._lock = threading.Lock()

    def __call__(self) -> "CachedSession":
        with self._lock:
            if self._session is None:
                self._session = cached_session(self.config, self.store)
            return self._session


def cached_session(config: dict, store: Store) -> "CachedSession":
    from requests_cache import CachedSession
    backend = config["microservices"]["cache"]
    if backend == "sqlite":
        path = join(store.folder("cache"), "upstream.sqlite")
        _owner_only(path)
        session = CachedSession(path, backend="sqlite", **_cache_settings())
        session.cache.delete(older_than=KEEP_FOR)
    else:
        session = CachedSession("upstream", backend="memory", **_cache_settings())
    session.headers["User-Agent"] = USER_AGENT
    return session


def _owner_only(path: str) -> None:
    """Make the cache file owner-only (it holds device coordinates and every question asked)
    before sqlite opens it: created 0600 if absent (sqlite then gives its journal the same
    mode), tightened if an older version left it readable. Never through the process umask,
    which the skill shares with ovos-core."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)


def _cache_settings() -> dict:
    return dict(
        # JSON, not pickle: a tampered cache file must not be able to run code
        serializer="json",
        allowable_methods=("GET",),
        allowable_codes=(200,),
        # the owner's key is neither part of the cache key nor written to the cache file
        ignored_parameters=KEY_PARAMS,
        # our TTLs rule, whatever the upstream's Cache-Control says
        cache_control=False,
    )


class Upstream:
    """One third-party API: where it is, which key it needs, what to call it in messages.

    The base URL and key are read from the config at each call, so a config change
    made through the admin API applies without a restart.
    """

    def __init__(self, name: str, session: Callable[[], "requests.Session"], config: dict,
                 url_key: str, api_key: str, hint: str):
        self.name = name
        self.session = session
        self.config = config
        self.url_key = url_key
        self.api_key = api_key
        self.hint = hint

    @property
    def key(self) -> str:
        return self.config["microservices"][self.api_key]

    def base_url(self) -> str:
        return self.config["microservices"][self.url_key].rstrip("/")

    def require_key(self) -> str:
        """The configured key; without one the service is off (503), never a 500."""
        if not self.key:
            raise ServiceUnavailable(f"{self.name} is not configured on this backend: "
                                     f"set microservices.{self.api_key} ({self.hint})")
        return self.key

    def get(self, path: str, params: Dict[str, str], ttl: int,
            passthrough: Iterable[int] = (),
            on_miss: Callable[[], None] = lambda: None) -> "requests.Response":
        """GET `path` with the key added, from the cache while younger than `ttl` seconds.

        `on_miss()` is called before the upstream is asked (the cache had no fresh
        answer): it raises to refuse the call (a device over its upstream quota), so a
        cached answer is always served. Statuses in `passthrough` are answers for the
        caller; any other non-200 becomes an error naming the service, unless the
        upstream is down, failing or over quota and a stale answer exists."""
        url = f"{self.base_url()}/{path.lstrip('/')}"
        query = {**params, "appid": self.require_key()}
        timeout = self.config["microservices"]["timeout"]
        cached = self.session().get(url, params=query, only_if_cached=True,
                                    expire_after=max(ttl, 0))
        if cached.status_code == 200:  # requests-cache answers 504 when it has none
            return cached
        on_miss()
        try:
            with reaching(self.name, url, timeout):
                # only our own headers go out: never the device's Authorization or Device
                response = self.session().get(url, params=query, timeout=timeout,
                                            expire_after=max(ttl, 0))
        except UpstreamError as error:
            return self._stale(url, query, error)
        if response.status_code == 200 or response.status_code in passthrough:
            return response
        error = self._status_error(response)
        if response.status_code == 429 or response.status_code >= 500:
            return self._stale(url, query, error)
        raise error

    def _stale(self, url: str, query: Dict[str, str], error: BackendError) -> "requests.Response":
        """The last good answer if it is less than a day old, else `error` raised."""
        response = self.session().get(url, params=query, only_if_cached=True,
                                    headers={"Cache-Control": f"stale-if-error={STALE_SECONDS}"})
        if response.status_code != 200:  # requests-cache answers 504 when it has nothing
            raise error
        LOG.warning(f"{error.message}; answering with the answer of "
                    f"{response.created_at:%Y-%m-%d %H:%M} UTC")
        return response

    def _status_error(self, response: "requests.Response") -> BackendError:
        """An upstream refusal, mapped to what it means for the device asking."""
        status = response.status_code
        detail = self._upstream_message(response)
        if status in (401, 403):
            return UpstreamError(f"{self.name} refused the configured key (HTTP {status}"
                                 f"{detail}): check microservices.{self.api_key}")
        if status == 429:
            return TooManyRequests(f"{self.name} quota exceeded (HTTP 429{detail})")
        if 400 <= status < 500:
            return BackendError(f"{self.name} rejected the request (HTTP {status}{detail})",
                                status=404 if status == 404 else 400)
        return UpstreamError(f"{self.name} failed (HTTP {status}{detail})")

    def _upstream_message(self, response: "requests.Response") -> str:
        """The upstream's own short explanation, key scrubbed, or ""."""
        try:
            body = response.json()
            text = (body.get("message") or body.get("error")) if isinstance(body, dict) else None
        except ValueError:
            text = response.text if "text/plain" in response.headers.get("Content-Type", "") else None
        if not isinstance(text, str) or not text.strip():
            return ""
        text = " ".join(text.split())[:MESSAGE_LIMIT]
        if self.key:
            text = text.replace(self.key, "***")
        return f": {text}"


@contextmanager
def reaching(name: str, url: str, timeout: float):
    """Turn a failed HTTP exchange with `name` into a 502/504 whose text holds no URL
    (requests' own messages carry the query string, keys included)."""
    import requests

    where = urlsplit(url).netloc or "?"
    try:
        yield
    except requests.Timeout:
        raise UpstreamError(f"{name} did not answer within {timeout:g} s", status=504) from None
    except requests.ConnectionError as e:
        LOG.warning(f"{name} unreachable at {where}: {type(e).__name__}")
        raise UpstreamError(f"cannot reach {name} at {where}: is this machine offline?") from None
    except requests.RequestException as e:
        LOG.warning(f"{name} request to {where} failed: {type(e).__name__}")
        raise UpstreamError(f"{name} request failed ({type(e).__name__})") from None


def choose(params: Dict[str, str], allowed: Iterable[str]) -> Dict[str, str]:
    """The device's query parameters an upstream may see (never a key of its own)."""
    return {name: params[name] for name in allowed if params.get(name) not in (None, "")}


def first(params, *names: str) -> Optional[str]:
    """The first of `names` present in the query."""
    for name in names:
        if params.get(name):
            return params[name]
    return None
