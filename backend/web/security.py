"""Who may use the admin page, and the browser-side protections around it.

* Login with the admin key, compared in constant time. Failed attempts are throttled
  per client address and overall, so guessing is slow even from many addresses.
* The session is Flask's signed cookie: HttpOnly, SameSite=Strict, Secure when the
  page is served over https, limited to /admin. It is signed with a key made by
  `secrets` for this process only: nothing secret is kept on disk, and a restart logs
  everyone out (the price: log in again after a restart; the login page then says
  why). A session is bound to the admin key (changing the key ends every session)
  and ends after an idle and an absolute limit.
* Every POST carries the session's CSRF token.
* Headers: a Content-Security-Policy without inline script or style, no framing,
  no MIME sniffing, no referrer, pages never cached.
"""
import hashlib
import hmac
import secrets
import time

from flask import Flask, Response, current_app, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from ..ratelimit import FailureLimiter

IDLE_LIMIT = 30 * 60          # seconds without a request before a session ends
SESSION_LIMIT = 12 * 60 * 60  # seconds after login before a session ends anyway
CSRF_FIELD = "csrf_token"

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; media-src 'self'; connect-src 'self'; "
                               "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
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
        never sends an empty session's cookie, so a cookie with nothing in it is one)."""
        opened = super().open_session(app, request)
        if opened is not None and not opened and request.cookies.get(self.get_cookie_name(app)):
            opened.lost = True
        return opened


def init_sessions(app: Flask) -> None:
    app.secret_key = secrets.token_bytes(32)
    app.config.update(SESSION_COOKIE_NAME="pb_admin", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_PATH="/admin")
    app.session_interface = _SessionInterface()


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
    now = time.time()
    session.update(key=_fingerprint(admin_key), login_at=now, seen_at=now,
                   csrf=secrets.token_urlsafe(32))


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
    activity (the dashboard's background poll does not: an open tab must still idle out)."""
    remembered = session.get("key")
    if not remembered:
        return "none"
    now = time.time()
    if not hmac.compare_digest(remembered, _fingerprint(admin_key)):
        state = "key-changed"
    elif now - session.get("seen_at", 0) > IDLE_LIMIT or now - session.get("login_at", 0) > SESSION_LIMIT:
        state = "expired"
    else:
        if touch:
            session["seen_at"] = now
        return "ok"
    session.clear()
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


# login throttling ---------------------------------------------------------------------------

class LoginThrottle:
    """At most `per_client` failed logins per client, and `overall` in total, within
    `window` seconds (two `ratelimit.FailureLimiter`s). A client that logs in has its
    failures forgiven."""

    EVERYONE = "*"

    def __init__(self, per_client: int = 5, overall: int = 50, window: float = 300):
        self._clients = FailureLimiter(per_client, window)
        self._all = FailureLimiter(overall, window, max_clients=1)

    def retry_after(self, client: str) -> int:
        """Seconds this client must wait before trying again (0: it may try now)."""
        return max(self._clients.retry_after(client), self._all.retry_after(self.EVERYONE))

    def failed(self, client: str) -> None:
        self._clients.failed(client)
        self._all.failed(self.EVERYONE)

    def succeeded(self, client: str) -> None:
        self._clients.forgive(client)
