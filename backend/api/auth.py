"""Pairing and token routes: /device/code, /device/activate, /auth/token."""
from flask import Blueprint, Response, jsonify, request

from .. import pairing
from . import get_config, get_store, json_body, not_paired

bp = Blueprint("auth", __name__)


@bp.get("/device/code")
def device_code():
    login = pairing.request_code(get_store(), get_config(), request.args.get("state", ""),
                                 request.args.get("packaging", ""))
    return jsonify(login)


@bp.post("/device/activate")
def device_activate():
    try:
        body = json_body()
    except Exception as e:
        # a JSON error would be saved by the device as its identity: answer in plain text
        raise pairing.ActivationRefused(str(e), status=400)
    if not isinstance(body, dict):
        raise pairing.ActivationRefused("expected a JSON object", status=400)
    login = pairing.activate(get_store(), get_config(), body.get("state"), body.get("token"),
                             {k: v for k, v in body.items() if k not in ("state", "token")})
    return jsonify(login)


@bp.errorhandler(pairing.ActivationRefused)
def activation_refused(error: pairing.ActivationRefused) -> Response:
    return Response(error.message, status=error.status, mimetype="text/plain")


@bp.get("/auth/token")
def refresh_token():
    login = pairing.refresh(get_store(), pairing.bearer(request.headers.get("Authorization")))
    if login is None:
        return not_paired("refresh refused: missing, unknown or already used token")
    return jsonify(login)
