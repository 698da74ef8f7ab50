"""Who may use the admin page, and the browser-side protections around it.

* Login with the admin key, compared in constant time. Failed attempts are throttled
  per client address and overall, so guessing is slow even from many addresses.
* The session is Flask's signed cookie: HttpOnly, SameSite=Strict, Secure when the
  page is served over https, limited to /admin. It is signed with a key made by
  `secrets` for this process only: nothing secret is kept on disk, and a restart logs
  everyone out (the price: log in again after a restart; the login page then says
  why). A session is bound to the admin key (changing the key ends every session)
  and ends after an idle and an absolute limit. Its id is also held by the server
  (`LiveSessions`), which forgets it at logout: a copy of the cookie then opens nothing.
* Every POST carries the session's CSRF token, and is refused when the browser says it
  comes from another origin (`from_another_site`): SameSite=Strict does not separate
  the ports of one host, so a page on 127.0.0.1:<another port> would ride the cookie.
* Headers: a Content-Security-Policy without inline script or style, no framing,
  no MIME sniffing, no referrer to other sites, pages never cached.
"""
import hashlib
import hmac
import secrets
import threading
import time
from typing import Dict, Optional, Tuple
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from ..ratelimit import GuessThrottle

IDLE_LIMIT = 30 * 60          # seconds without a request before a session ends
SESSION_LIMIT = 12 * 60 * 60  # seconds after login before a session ends anyway
CSRF_FIELD = "csrf_token"

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; media-src 'self'; connect-src 'self'; "
                               "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # not no-referrer: with it browsers send `Origin: null` on the page's own forms, and
    # the Origin check could not tell them from a sandboxed attacker's
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


class _Session(SecureCookieSession):
    #: the browser sent a session cookie this process cannot read: it was signed before a
    #: restart (or is too old, or forged). Flask would just start an empty session.
    lost = False


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with `Secure` decided per request: the same
    server is reached over plain http on a LAN and over https behind a proxy."""

    session_class = _Session

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure

    def open_session(self, app: Flask, request):
        """Flask's session, marked `lost` when a cookie came but did not validate (Flask
        never sends an empty session's cookie, so a cookie with nothing in it is one).

        Only the admin page has sessions (its cookie's path is /admin): every other
        request (the API devices poll) gets Flask's null session, which is neither
        verified nor saved. Opening and saving a signed cookie took ~11% of the CPU
        of the device-poll mix."""
        if not _under(request.path, app.config["SESSION_COOKIE_PATH"]):
            return self.make_null_session(app)
        opened = super().open_session(app, request)
        if opened is not None and not opened and request.cookies.get(self.get_cookie_name(app)):
            opened.lost = True
        return opened


def _under(path: str, folder: str) -> bool:
    """Whether the URL `path` is `folder` or below it (as a cookie's Path matches)."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


class LiveSessions:
    """The ids of the sessions that a login opened and nothing has ended since.

    A signed cookie is valid wherever it is copied to (a backup, a shared machine, a
    leaked header) until it expires; only a list kept by the server can end it sooner.
    In memory: a restart ends every session anyway (the signing key is per process)."""

    def __init__(self):
        self._ids: Dict[str, Tuple[str, float]] = {}  # id -> (key fingerprint, monotonic login time)
        self._lock = threading.Lock()

    def open(self, fingerprint: str) -> str:
        """A new session id. Sessions of another admin key (it changed) or past the
        absolute limit are forgotten here, so the list never outgrows the live ones."""
        now, sid = time.monotonic(), secrets.token_urlsafe(32)
        with self._lock:
            self._ids = {k: (key, at) for k, (key, at) in self._ids.items()
                         if key == fingerprint and now - at <= SESSION_LIMIT}
            self._ids[sid] = (fingerprint, now)
        return sid

    def alive(self, sid, fingerprint: str) -> bool:
        with self._lock:
            held = self._ids.get(sid) if isinstance(sid, str) else None
        return held is not None and held[0] == fingerprint

    def close(self, sid) -> None:
        with self._lock:
            if isinstance(sid, str):
                self._ids.pop(sid, None)


def init_sessions(app: Flask) -> None:
    app.secret_key = secrets.token_bytes(32)
    app.config.update(SESSION_COOKIE_NAME="pb_admin", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_PATH="/admin")
    app.session_interface = _SessionInterface()
    app.extensions["personal_backend_sessions"] = LiveSessions()


def _live() -> LiveSessions:
    return current_app.extensions["personal_backend_sessions"]


def add_headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.endpoint != "web.static":
        response.headers["Cache-Control"] = "no-store"
    return response


# the admin key -------------------------------------------------------------------------

def key_matches(candidate: str, admin_key: str) -> bool:
    return hmac.compare_digest(candidate.encode("utf-8", "surrogatepass"), admin_key.encode())


def _fingerprint(admin_key: str) -> str:
    """What a session remembers of the key it was opened with (keyed: reveals nothing)."""
    return hmac.new(current_app.secret_key, admin_key.encode(), hashlib.sha256).hexdigest()


def start_session(admin_key: str) -> None:
    """A fresh session (never one an attacker could have planted before login)."""
    session.clear()
    now, fingerprint = time.time(), _fingerprint(admin_key)
    session.update(sid=_live().open(fingerprint), key=fingerprint, login_at=now, seen_at=now,
                   csrf=secrets.token_urlsafe(32))


def end_session() -> None:
    """Logout: the server forgets the session, so a copy of the cookie is refused too."""
    _live().close(session.get("sid"))
    session.clear()


def session_lost() -> bool:
    """Whether the browser sent a session cookie this process cannot read (signed before
    a restart: the key is made per process). True at most once per request, so the page
    says so once; the answer then sets a cookie this process can read."""
    lost = getattr(session, "lost", False)
    if lost:
        session.lost = False
    return lost


def session_state(admin_key: str, touch: bool = True) -> str:
    """"ok", "none", "expired" or "key-changed". `touch` counts the request as
    activity (the dashboard's background poll does not: an open tab must still idle out).
    A session the server no longer holds (logged out: this is a copy) is "none"."""
    remembered = session.get("key")
    if not remembered:
        return "none"
    now, fingerprint = time.time(), _fingerprint(admin_key)
    if not hmac.compare_digest(remembered, fingerprint):
        state = "key-changed"
    elif not _live().alive(session.get("sid"), fingerprint):
        state = "none"
    elif now - session.get("seen_at", 0) > IDLE_LIMIT or now - session.get("login_at", 0) > SESSION_LIMIT:
        state = "expired"
    else:
        if touch:
            session["seen_at"] = now
        return "ok"
    end_session()
    return state


# CSRF ------------------------------------------------------------------------------------

def csrf_token() -> str:
    """The session's token for forms (made on first use, also before login)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def csrf_ok() -> bool:
    expected = session.get("csrf")
    given = request.form.get(CSRF_FIELD, "")
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


# requests from other sites -------------------------------------------------------------------

DEFAULT_PORTS = {"http": 80, "https": 443}
CROSS_SITE = ("cross-site", "same-site")  # Sec-Fetch-Site values of a page of another origin


def _origin(url: str) -> Optional[Tuple[str, str, Optional[int]]]:
    """(scheme, host, port) of a URL or an Origin header; None for `null` or garbage."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    return parts.scheme.lower(), parts.hostname.lower().rstrip("."), port


def from_another_site(public_url: str) -> bool:
    """Whether the browser says this request comes from a page of another origin.

    Current browsers send `Sec-Fetch-Site`, and `Origin` on every POST; this page's own
    origin is the one the request was addressed to, or `public_url` (server.url: what an
    https proxy in front shows the browser). The port counts: a page on another port of
    this host is another origin, though the same site for SameSite cookies. A request
    with neither header (an old browser, a script) is left to the CSRF token."""
    if request.headers.get("Sec-Fetch-Site", "").strip().lower() in CROSS_SITE:
        return True
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    own = {_origin(request.host_url), _origin(public_url)} - {None}
    return _origin(origin) not in own


# login throttling ---------------------------------------------------------------------------

class LoginThrottle(GuessThrottle):
    """Failed logins: at most `per_client` per client and `overall` in total within
    `window` seconds. Like the admin API's, it only refuses wrong keys: the login
    compares the key first, so another process on the owner's machine cannot lock
    the owner out of the page."""

    def __init__(self, per_client: int = 5, overall: int = 50, window: float = 300):
        super().__init__(per_client, overall, window)
