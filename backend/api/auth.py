"""Pairing and token routes: /device/code, /device/activate, /auth/token."""
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
    login = pairing.request_code(get_store(), get_config(), request.args.get("state", ""),
                                 request.args.get("packaging", ""))
    if get_config()["server"]["pairing"] == "confirm":
        _announce_pairing(login["code"])
    return jsonify(login)


def _announce_pairing(code: str) -> None:
    """Tell the owner a device waits for approval; a failing listener never fails pairing."""
    listener = current_app.extensions["personal_backend"].get("on_pairing_requested")
    if listener is not None:
        try:
            listener({"code": code})
        except Exception as e:
            LOG.error(f"on_pairing_requested failed: {e!r}")


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
