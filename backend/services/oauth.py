"""OAuth for skills (api-contract §3.10): apps the owner registers, tokens devices read.

The old backend let a device register an app with endpoints of its choosing (the
server then POSTed to any URL a device named) and accepted any callback for any id
(anyone could plant a token). Here:

* only the admin registers apps (`oauth_apps`, keyed by the app id skills ask for);
* an authorization starts from the backend (`authorization_url`), which issues an
  unguessable, single-use, 10-minute `state` bound to the app and the device, and a
  PKCE verifier; the callback is accepted only with that state;
* the code is exchanged at the admin-registered token endpoint only.

Token ids: `@<uuid>|<app id>` for a device's own token (the id the old backend's
device route looked up), `<app id>` for a household token shared by every device
(set by the admin, or by an authorization the admin started). A device reads its
own token first, then the shared one.

Secrets (client secrets, access and refresh tokens) never appear in logs; admin
views show them masked (except the one token the admin reads by id), and a masked
value written back means "unchanged".
"""
import base64
import hashlib
import json
import re
import secrets
import threading
import time
from typing import TYPE_CHECKING, List, Optional
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ovos_utils.log import LOG

from ..config import MASK, public_url
from ..errors import BadRequest, NotFound, ServiceUnavailable, UpstreamError
from ..store import Store
from .fetch import USER_AGENT, reaching

if TYPE_CHECKING:
    import requests

APP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")  # \Z: "$" lets a final newline in
TOKEN_ID = re.compile(r"^(@[A-Za-z0-9_-]{1,128}\|)?[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
RESERVED_IDS = ("list", "callback")  # path words of the API
STATE_TTL = 600
# expired states are looked for at most this often: a look reads every pending state, and
# doing it per authorization made each one cost more as they piled up
PURGE_INTERVAL = 60
# refresh a little before the provider's deadline, so the device gets a usable token
REFRESH_MARGIN = 60
TOKEN_LIMIT = 16 * 1024
TEXT_LIMITS = {"client_id": 512, "client_secret": 1024, "scope": 1024}
URL_FIELDS = ("auth_endpoint", "token_endpoint", "refresh_endpoint", "callback_endpoint")
REQUIRED = ("client_id", "auth_endpoint", "token_endpoint")
APP_FIELDS = set(TEXT_LIMITS) | set(URL_FIELDS) | {"token_id", "oauth_service", "shell_integration"}
SECRET_TOKEN_FIELDS = ("access_token", "refresh_token", "id_token")


def device_token_id(uuid: str, app_id: str) -> str:
    return f"@{uuid}|{app_id}"


def check_app_id(app_id) -> str:
    if not isinstance(app_id, str) or not APP_ID.match(app_id) or app_id in RESERVED_IDS:
        raise BadRequest("an OAuth app id is 1-64 letters, digits, '.', '_' or '-' "
                         f"(and not {', '.join(RESERVED_IDS)})")
    return app_id


def check_token_id(token_id) -> str:
    if not isinstance(token_id, str) or not TOKEN_ID.match(token_id):
        raise BadRequest("a token id is <app id> (shared) or @<device uuid>|<app id>")
    return token_id


def callback_url(config: dict, app_id: str, app: dict) -> str:
    """Where the provider sends the browser back: the app's own setting, else this server."""
    return app.get("callback_endpoint") or \
        f"{public_url(config)}/{config['server']['version']}/auth/callback/{app_id}"


# apps (admin) ----------------------------------------------------------------------

def app_view(config: dict, app_id: str, app: dict) -> dict:
    """The row the admin client and the manager read; the client secret masked."""
    return {"token_id": app_id, "oauth_service": app_id,
            "client_id": app.get("client_id", ""),
            "client_secret": MASK if app.get("client_secret") else "",
            "auth_endpoint": app.get("auth_endpoint", ""),
            "token_endpoint": app.get("token_endpoint", ""),
            "refresh_endpoint": app.get("refresh_endpoint", ""),
            "callback_endpoint": callback_url(config, app_id, app),
            "scope": app.get("scope", ""),
            "shell_integration": app.get("shell_integration", True)}


def get_app(store: Store, app_id: str) -> dict:
    app = store.oauth_apps.get(check_app_id(app_id))
    if app is None:
        raise NotFound(f"no OAuth app {app_id!r} is registered")
    return app


def app_rows(config: dict, store: Store) -> List[dict]:
    return [app_view(config, app_id, app) for app_id, app in sorted(store.oauth_apps.all().items())]


def put_app(store: Store, app_id: str, body) -> dict:
    """Create or update an app (upsert); absent or null fields keep their value."""
    check_app_id(app_id)
    changes = _app_changes(app_id, body)

    def apply(current: Optional[dict]) -> dict:
        return _complete({**(current or {}), **changes})

    return store.oauth_apps.update(app_id, apply)


def checked_app(app_id: str, body) -> dict:
    """A whole app from another backend's data (the import), checked as the admin's is."""
    return _complete(_app_changes(check_app_id(app_id), body))


def _complete(app: dict) -> dict:
    missing = [name for name in REQUIRED if not app.get(name)]
    if missing:
        raise BadRequest(f"{', '.join(missing)} required for a new OAuth app")
    return app


def _app_changes(app_id: str, body) -> dict:
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object")
    unknown = set(body) - APP_FIELDS
    if unknown:
        raise BadRequest(f"unknown OAuth app fields: {sorted(map(str, unknown))[:5]}")
    for name in ("token_id", "oauth_service"):
        if body.get(name) not in (None, app_id):
            raise BadRequest(f"{name} does not match the app id {app_id!r} (apps are not renamed)")
    changes = {}
    for name, limit in TEXT_LIMITS.items():
        value = body.get(name)
        if value is None or (name == "client_secret" and value == MASK):
            continue
        if not isinstance(value, str) or len(value) > limit:
            raise BadRequest(f"{name} must be a string of at most {limit} characters")
        changes[name] = value.strip()
    for name in URL_FIELDS:
        value = body.get(name)
        if value is not None:
            changes[name] = _endpoint(name, value)
    if body.get("shell_integration") is not None:
        if not isinstance(body["shell_integration"], bool):
            raise BadRequest("shell_integration must be true or false")
        changes["shell_integration"] = body["shell_integration"]
    return changes


def _endpoint(name: str, value) -> str:
    """An http(s) URL ("" allowed: the optional endpoints fall back to defaults)."""
    if not isinstance(value, str) or len(value) > 2048:
        raise BadRequest(f"{name} must be a URL")
    value = value.strip()
    if value:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
            raise BadRequest(f"{name} must be an http(s) URL without a fragment")
    return value


def delete_app(store: Store, app_id: str) -> None:
    """Forget an app; tokens already issued stay until deleted (they cannot be refreshed)."""
    if not store.oauth_apps.delete(check_app_id(app_id)):
        raise NotFound(f"no OAuth app {app_id!r} is registered")


# tokens (admin) --------------------------------------------------------------------

def token_record(token_id: str, token: dict) -> dict:
    """A stored token whole, for the admin who reads that one token
    (ovos-backend-client's `db_get_oauth_token`): it is asked for to be used."""
    return {"token_id": token_id, **token}


def token_view(token_id: str, token: dict) -> dict:
    """A stored token for listings and echoes: expiry and scope visible, secrets masked."""
    view = token_record(token_id, token)
    for name in SECRET_TOKEN_FIELDS:
        if view.get(name):
            view[name] = MASK
    return view


def get_token(store: Store, token_id: str) -> dict:
    token = store.oauth_tokens.get(check_token_id(token_id))
    if token is None:
        raise NotFound(f"no OAuth token {token_id!r}")
    return token


def token_rows(store: Store) -> List[dict]:
    return [token_view(token_id, token)
            for token_id, token in sorted(store.oauth_tokens.all().items())]


def put_token(store: Store, token_id: str, token_data) -> dict:
    """Store a token the admin obtained elsewhere (upsert; masked secrets keep their value)."""
    check_token_id(token_id)
    if isinstance(token_data, str):
        try:
            token_data = json.loads(token_data)
        except ValueError:
            raise BadRequest("token_data is not valid JSON") from None
    if not isinstance(token_data, dict) or not token_data:
        raise BadRequest("token_data must be a JSON object (access_token, expires_at, ...)")
    if len(json.dumps(token_data)) > TOKEN_LIMIT:
        raise BadRequest(f"token_data is larger than {TOKEN_LIMIT} bytes")

    def apply(current: Optional[dict]) -> dict:
        token = dict(token_data)
        for name in SECRET_TOKEN_FIELDS:
            if token.get(name) == MASK:
                if not current or not current.get(name):
                    raise BadRequest(f"{name} is masked but no stored value exists")
                token[name] = current[name]
        return token

    return store.oauth_tokens.update(token_id, apply)


def delete_token(store: Store, token_id: str) -> None:
    if not store.oauth_tokens.delete(check_token_id(token_id)):
        raise NotFound(f"no OAuth token {token_id!r}")


# the authorization dance and token refresh -------------------------------------------

class OAuth:
    """Talks to the providers of admin-registered apps."""

    def __init__(self, config: dict, store: Store):
        self.config = config
        self.store = store
        self._session: Optional["requests.Session"] = None  # made at the first token request
        self._refresh_lock = threading.Lock()
        self._purged_at = float("-inf")  # time.monotonic() of the last purge

    def authorization_url(self, app_id: str, uuid: Optional[str]) -> str:
        """The provider URL a person opens to grant access: for device `uuid`'s own token,
        or for the household token when `uuid` is None (the admin started it)."""
        app = get_app(self.store, app_id)
        state, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(48)
        redirect_uri = callback_url(self.config, app_id, app)
        self._purge_states()
        self.store.oauth_states.put(_digest(state), {
            "app_id": app_id, "uuid": uuid or "", "verifier": verifier,
            "redirect_uri": redirect_uri, "expires_at": time.time() + STATE_TTL})
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        params = {"response_type": "code", "client_id": app["client_id"],
                  "redirect_uri": redirect_uri, "state": state,
                  "code_challenge": challenge.rstrip(b"=").decode(),
                  "code_challenge_method": "S256"}
        if app.get("scope"):
            params["scope"] = app["scope"]
        return _with_query(app["auth_endpoint"], params)

    def complete(self, path_id: str, params) -> dict:
        """The provider's redirect: check the state, exchange the code, keep the token."""
        key = _digest(params.get("state") or "")
        pending = self.store.oauth_states.get(key)
        # single use, whatever happens next: only the request that deletes it goes on
        if pending is None or not self.store.oauth_states.delete(key) \
                or pending["expires_at"] < time.time():
            raise BadRequest("unknown or expired authorization: start again from the device")
        app_id = pending["app_id"]
        if path_id.split("|")[-1] != app_id:
            raise BadRequest("this callback does not belong to that authorization")
        if params.get("error"):
            raise BadRequest(f"the provider did not authorize: {str(params['error'])[:100]}")
        if not params.get("code"):
            raise BadRequest("the provider sent no code")
        app = get_app(self.store, app_id)
        token = self._token_request(app_id, app, app["token_endpoint"], {
            "grant_type": "authorization_code", "code": params["code"],
            "redirect_uri": pending["redirect_uri"], "code_verifier": pending["verifier"]})
        token_id = device_token_id(pending["uuid"], app_id) if pending["uuid"] else app_id
        self.store.oauth_tokens.put(token_id, token)
        LOG.info(f"OAuth token stored for {token_id}")
        return {"success": True, "token_id": token_id,
                "message": f"{app_id} is authorized; you can close this page"}

    def device_token(self, uuid: str, app_id: str, refresh: bool) -> Optional[dict]:
        """The token device `uuid` should use for `app_id` (its own, else the household's),
        refreshed at the provider first when it expired and `refresh` is asked."""
        check_app_id(app_id)
        for token_id in (device_token_id(uuid, app_id), app_id):
            token = self.store.oauth_tokens.get(token_id)
            if token is not None:
                if refresh and _expired(token):
                    token = self.refresh(token_id, app_id)
                return token
        return None

    def refresh(self, token_id: str, app_id: str) -> dict:
        """Trade the refresh token for a new access token and keep the result."""
        with self._refresh_lock:
            # another request may have refreshed it while this one waited
            token = get_token(self.store, token_id)
            if not _expired(token):
                return token
            if not token.get("refresh_token"):
                raise UpstreamError(f"the {app_id} token expired and has no refresh token: "
                                    "authorize again")
            try:
                app = get_app(self.store, app_id)
            except NotFound:
                raise ServiceUnavailable(f"cannot refresh: the OAuth app {app_id!r} "
                                         "is no longer registered") from None
            url = app.get("refresh_endpoint") or app["token_endpoint"]
            fresh = self._token_request(app_id, app, url, {"grant_type": "refresh_token",
                                                           "refresh_token": token["refresh_token"]})
            token = {k: v for k, v in token.items() if k != "expires_at"}
            token.update(fresh)  # providers may omit the refresh token: the old one stays
            self.store.oauth_tokens.put(token_id, token)
            LOG.info(f"OAuth token {token_id} refreshed")
            return token

    def _http(self) -> "requests.Session":
        """The HTTP session to the providers (requests is imported on first use: 0.13 s of
        the standalone server's start otherwise)."""
        if self._session is None:
            import requests

            session = requests.Session()
            session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
            self._session = session
        return self._session

    def _token_request(self, app_id: str, app: dict, url: str, data: dict) -> dict:
        """POST to the app's token endpoint, client authenticated with HTTP Basic."""
        timeout = self.config["microservices"]["timeout"]
        name = f"the {app_id} OAuth provider"
        with reaching(name, url, timeout):
            response = self._http().post(url, data=data, timeout=timeout,
                                         auth=(app["client_id"], app.get("client_secret", "")))
        token = _token_body(response)
        if response.status_code != 200 or not token.get("access_token"):
            reason = ": ".join(str(token[k]) for k in ("error", "error_description") if token.get(k))
            raise UpstreamError(f"{name} refused (HTTP {response.status_code}: "
                                f"{(reason or 'no access token')[:160]})")
        try:
            token["expires_at"] = time.time() + float(token["expires_in"])
        except (KeyError, TypeError, ValueError):
            pass  # no lifetime given: the token is used until the provider refuses it
        return token

    def _purge_states(self) -> None:
        """Delete expired pending authorizations, once per PURGE_INTERVAL at most (each
        state is one file: storing one costs the same however many are pending)."""
        if time.monotonic() - self._purged_at < PURGE_INTERVAL:
            return
        self._purged_at = time.monotonic()
        now = time.time()
        for key, pending in self.store.oauth_states.all().items():
            if pending.get("expires_at", 0) < now:
                self.store.oauth_states.delete(key)


def _token_body(response: "requests.Response") -> dict:
    """The provider's answer as a dict: JSON, or form-encoded (some ignore Accept)."""
    try:
        body = response.json()
    except ValueError:
        body = dict(parse_qsl(response.text)) if len(response.text) < TOKEN_LIMIT else {}
    return body if isinstance(body, dict) else {}


def _expired(token: dict) -> bool:
    expires_at = token.get("expires_at")
    return isinstance(expires_at, (int, float)) and expires_at - REFRESH_MARGIN <= time.time()


def _digest(state: str) -> str:
    """States are stored hashed: reading the data folder does not let one finish a login."""
    return hashlib.sha256(state.encode("utf-8", "surrogatepass")).hexdigest()


def _with_query(url: str, params: dict) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def refresh_flag(value: Optional[str]) -> bool:
    """`?refresh=True` as ovos-backend-client spells it (requests writes booleans so)."""
    return str(value or "").strip().lower() in ("true", "1", "yes")
