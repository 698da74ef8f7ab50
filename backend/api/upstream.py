"""Device routes that reach beyond this machine (api-contract §3.9, §3.10, §6.3, §6.4):
weather, Wolfram|Alpha, e-mail to the owner, OAuth tokens.

Each service is off until the owner configures it (a key, an SMTP server, an app):
meanwhile it answers 503 JSON saying what to set. Upstream failures are 502/504 JSON.
"""
from flask import Blueprint, Response, g, jsonify, request

from .. import devices
from ..quotas import HourlyBudget
from ..services import oauth
from ..services.fetch import SharedSession
from ..services.mail import Mailer, message_fields
from ..services.oauth import OAuth
from ..services.weather import Weather
from ..services.wolfram import Wolfram
from ..store import Store
from . import device_required, get_service, get_store, json_body

bp = Blueprint("upstream", __name__)


def build_services(config: dict, store: Store) -> dict:
    """The service objects these routes use, for `app.extensions[...]["services"]`."""
    session = SharedSession(config, store)
    # one budget for both services: it is the owner's upstream allowance a device spends
    misses = HourlyBudget(config, "upstream_misses_per_hour",
                          "weather and Wolfram|Alpha calls not answered from the cache")
    return {"weather": Weather(config, session, misses), "wolfram": Wolfram(config, session, misses),
            "mail": Mailer(config), "oauth": OAuth(config, store)}


def _device() -> dict:
    return devices.get(get_store(), g.uuid)


# OpenWeatherMap ----------------------------------------------------------------------

@bp.get("/owm/<path:endpoint>")
@device_required
def weather(endpoint):
    return jsonify(get_service("weather").get(endpoint, request.args, _device()))


# Wolfram|Alpha -------------------------------------------------------------------------

def _wolfram(kind: str) -> Response:
    answer = get_service("wolfram").ask(kind, request.args, _device())
    return Response(answer.body, status=answer.status, content_type=answer.content_type)


@bp.get("/wolframAlphaSpoken")
@device_required
def wolfram_spoken():
    return _wolfram("spoken")


@bp.get("/wolframAlphaSimple")
@device_required
def wolfram_simple():
    return _wolfram("simple")


@bp.get("/wolframAlphaFull")
@device_required
def wolfram_full():
    return _wolfram("full")


@bp.get("/wa")
@device_required
def wolfram_xml():
    """Old mycroft-core: the v2 answer as XML."""
    return _wolfram("xml")


# e-mail to the owner --------------------------------------------------------------------

@bp.put("/device/<uuid>/message")
@device_required
def send_message(uuid):
    fields = message_fields(json_body())
    return jsonify(get_service("mail").send_for_device(_device(), fields))


# OAuth ------------------------------------------------------------------------------------

@bp.get("/device/<uuid>/token/<oauth_id>")
@device_required
def oauth_token(uuid, oauth_id):
    """The token dict; JSON `null` (404) when there is none: ovos-backend-client hands any
    JSON body to the skill as the token, so an error object would look like one."""
    token = get_service("oauth").device_token(uuid, oauth_id,
                                              oauth.refresh_flag(request.args.get("refresh")))
    if token is None:
        return jsonify(None), 404
    return jsonify(token)


@bp.get("/auth/<oauth_id>/auth_url")
@device_required
def oauth_auth_url(oauth_id):
    """The provider URL to open in a browser, as plain text (as the old backend answered;
    no ovos-backend-client method reads it, so that is the only shape anyone relies on).
    Only admin-registered apps: query parameters naming endpoints are ignored."""
    url = get_service("oauth").authorization_url(oauth_id, g.uuid)
    return Response(url, mimetype="text/plain")


@bp.get("/auth/callback/<path:token_id>")
def oauth_callback(token_id):
    """The provider sends the browser here; the `state` we issued is the only credential."""
    return jsonify(get_service("oauth").complete(token_id, request.args))
