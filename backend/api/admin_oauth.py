"""Admin API for OAuth (api-contract §7.2, §7.3): apps and tokens.

Paths and bodies are those of ovos-backend-client's `db_*oauth*` calls. Apps are
created with or without `refresh_endpoint` (the client stopped sending it in 1.0.0,
the manager still does); every PUT is an upsert. Secrets come back masked (the
manager writes rows back: a masked value means "unchanged"), except in the answer to
reading one token by id, which is how the admin gets a token to use.
"""
from flask import Blueprint, Response, jsonify

from ..errors import BadRequest
from ..services import oauth
from . import admin_required, get_config, get_service, get_store, json_body

bp = Blueprint("admin_oauth", __name__, url_prefix="/admin")
bp.before_request(admin_required(lambda: None))


# apps -------------------------------------------------------------------------------

def _app_row(app_id: str) -> dict:
    return oauth.app_view(get_config(), app_id, oauth.get_app(get_store(), app_id))


@bp.get("/oauth_apps/list")
def list_apps():
    return jsonify(oauth.app_rows(get_config(), get_store()))


@bp.get("/oauth_apps/<app_id>")
def get_app(app_id):
    return jsonify(_app_row(app_id))


@bp.post("/oauth_apps")
def create_oauth_app():
    body = json_body()
    app_id = (body.get("token_id") or body.get("oauth_service")) if isinstance(body, dict) else None
    oauth.put_app(get_store(), app_id, body)
    return jsonify(_app_row(app_id))


@bp.put("/oauth_apps/<app_id>")
def update_app(app_id):
    oauth.put_app(get_store(), app_id, json_body())
    return jsonify(_app_row(app_id))


@bp.delete("/oauth_apps/<app_id>")
def delete_app(app_id):
    oauth.delete_app(get_store(), app_id)
    return jsonify({"success": True, "token_id": app_id})


@bp.get("/oauth_apps/<app_id>/auth_url")
def household_auth_url(app_id):
    """Authorize an app for every device (the token is stored under the app id)."""
    return Response(get_service("oauth").authorization_url(app_id, None), mimetype="text/plain")


# tokens ------------------------------------------------------------------------------

@bp.get("/oauth_toks/list")
def list_tokens():
    return jsonify(oauth.token_rows(get_store()))


@bp.get("/oauth_toks/<token_id>")
def get_token(token_id):
    """The token itself, secrets included (listings stay masked)."""
    return jsonify(oauth.token_record(token_id, oauth.get_token(get_store(), token_id)))


@bp.route("/oauth_toks", methods=["PUT", "POST"])
def create_token():
    """ovos-backend-client's `db_post_oauth_token` sends PUT; the old backend took POST."""
    body = json_body()
    if not isinstance(body, dict):
        raise BadRequest("expected {\"token_id\": ..., \"token_data\": {...}}")
    token_id = body.get("token_id")
    token = oauth.put_token(get_store(), token_id, body.get("token_data"))
    return jsonify(oauth.token_view(token_id, token))


@bp.put("/oauth_toks/<token_id>")
def update_token(token_id):
    body = json_body()
    if not isinstance(body, dict):
        raise BadRequest("expected {\"token_data\": {...}}")
    token = oauth.put_token(get_store(), token_id, body.get("token_data"))
    return jsonify(oauth.token_view(token_id, token))


@bp.delete("/oauth_toks/<token_id>")
def delete_token(token_id):
    oauth.delete_token(get_store(), token_id)
    return jsonify({"success": True, "token_id": token_id})
