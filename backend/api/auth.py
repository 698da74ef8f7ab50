"""Pairing and token routes: /device/code, /device/activate, /auth/token."""
import threading
import time
from typing import Callable, Optional

from flask import Blueprint, Response, current_app, jsonify, request
from ovos_utils.log import LOG
from werkzeug.exceptions import HTTPException

from .. import pairing, ratelimit
from ..errors import BadRequest
from . import get_config, get_store, json_body, not_paired

bp = Blueprint("auth", __name__)
WAITING_FOR_APPROVAL = pairing.ActivationRefused.status  # the refusal of a pending code


@bp.get("/device/code")
def device_code():
    config = get_config()
    announce = _announcer().request if config["server"]["pairing"] == "confirm" else None
    login = pairing.request_code(get_store(), config, request.args.get("state", ""),
                                 request.args.get("packaging", ""), on_new=announce)
    return jsonify(login)


@bp.errorhandler(pairing.PairingBusy)
def pairing_busy(error: pairing.PairingBusy) -> Response:
    """JSON, like the route's other refusals, with the time until a code is forgotten."""
    response = jsonify({"error": error.message})
    response.status_code = error.status
    response.headers["Retry-After"] = str(error.retry_after)
    return response


class Announcer:
    """Tells the owner, by voice through the skill, that devices wait for approval: at most
    once per `interval` seconds, since anyone who reaches the server can ask for codes (a
    page of 200 <img> tags was 200 announcements in 1.2 s). A request within the interval
    is folded into one announcement made when it ends: `{"code": the latest, "count": how
    many asked}`. A failing listener never fails pairing."""

    def __init__(self, listener: Optional[Callable[[dict], None]], interval: float):
        self.listener, self.interval = listener, interval
        self._lock = threading.Lock()
        self._last = -interval  # time.monotonic() of the last announcement
        self._latest, self._count = "", 0  # what waits to be announced
        self._timer: Optional[threading.Timer] = None

    def request(self, code: str) -> None:
        """A device asked for `code`: announce now, or when the interval ends."""
        with self._lock:
            self._latest, self._count = code, self._count + 1
            if self._timer is not None:
                return  # announced with the others when the timer fires
            wait = self._last + self.interval - time.monotonic()
            if wait > 0:
                self._timer = threading.Timer(wait, self._announce)
                self._timer.daemon = True
                self._timer.start()
                return
        self._announce()

    def _announce(self) -> None:
        with self._lock:
            code, count = self._latest, self._count
            self._count, self._timer, self._last = 0, None, time.monotonic()
        if count and self.listener is not None:
            try:
                self.listener({"code": code, "count": count})
            except Exception as e:
                LOG.error(f"on_pairing_requested failed: {e!r}")


def _announcer() -> Announcer:
    """The app's Announcer, made on first use."""
    found = current_app.extensions.get("personal_backend_announcer")
    if found is None:
        found = current_app.extensions.setdefault("personal_backend_announcer", Announcer(
            current_app.extensions["personal_backend"].get("on_pairing_requested"),
            get_config()["server"]["pairing_announce_seconds"]))
    return found


@bp.post("/device/activate")
def device_activate():
    try:
        body = json_body()
    # a JSON error would be saved by the device as its identity: answer in plain text
    except BadRequest as e:
        raise pairing.ActivationRefused(e.message, status=400) from e
    except HTTPException as e:  # e.g. 413, a body over server.max_body_mb
        raise pairing.ActivationRefused(e.description or e.name, status=e.code) from e
    if not isinstance(body, dict):
        raise pairing.ActivationRefused("expected a JSON object", status=400)
    login = pairing.activate(get_store(), get_config(), body.get("state"), body.get("token"),
                             {k: v for k, v in body.items() if k not in ("state", "token")})
    return jsonify(login)


@bp.errorhandler(pairing.ActivationRefused)
def activation_refused(error: pairing.ActivationRefused) -> Response:
    """Plain text. Every refusal but the wait for approval (which devices poll) counts as a
    failure; past the limit, failures answer 429. The limit is applied after the check, not
    before: a valid (state, token) is never refused, and a 256-bit token cannot be guessed
    anyway, so nothing is gained by making a real device wait behind a noisy neighbour."""
    if error.status != WAITING_FOR_APPROVAL:
        limiter, client = ratelimit.limiter("activation"), ratelimit.client_address()
        wait = limiter.retry_after(client)
        limiter.failed(client)
        if wait:
            return ratelimit.too_many(wait, f"too many failed activations; wait {wait} s",
                                      plain=True)
    return Response(error.message, status=error.status, mimetype="text/plain")


@bp.get("/auth/token")
def refresh_token():
    login = pairing.refresh(get_store(), pairing.bearer(request.headers.get("Authorization")))
    if login is None:
        return not_paired("refresh refused: missing, unknown or already used token")
    return jsonify(login)
