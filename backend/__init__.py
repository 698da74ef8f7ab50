"""The personal backend: `create_app(config, store)` builds the Flask application."""
import json
from typing import Callable, Optional

from flask import Flask, Response, jsonify
from flask.json.provider import DefaultJSONProvider
from ovos_utils.log import LOG
from werkzeug.exceptions import HTTPException

from . import config as config_module
from .errors import BackendError
from .store import Store


def create_app(config: Optional[dict] = None, store: Optional[Store] = None,
               on_pairing_requested: Optional[Callable[[dict], None]] = None,
               config_path: Optional[str] = None) -> Flask:
    """An app serving `config` (defaults when None) from `store` (built from config when None).

    `on_pairing_requested({"code": ..., "count": ...})` is called when a device asks to pair
    and waits for the owner's approval (confirm mode): the skill announces it by voice. At
    most once per server.pairing_announce_seconds: `count` devices asked, `code` the latest."""
    config = config if config is not None else config_module.load(config_path)
    store = store if store is not None else Store(config["data_path"])
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config["server"]["max_body_mb"] * 1024 * 1024
    app.json = JSONProvider(app)
    app.extensions["personal_backend"] = {"config": config, "store": store, "services": {},
                                         "on_pairing_requested": on_pairing_requested,
                                         # where admin config changes are saved
                                         "config_path": config_path or config_module.default_config_path()}

    from . import hosts
    hosts.init_app(app)  # first: no route answers a rebound name (DNS rebinding)
    from .api import admin, admin_oauth, admin_records, auth, device, openapi, speech, speech_server, upstream
    prefix = f"/{config['server']['version']}"
    app.extensions["personal_backend"]["services"].update(upstream.build_services(config, store))
    app.extensions["personal_backend"]["services"].update(speech.build_services(config, store))
    for blueprint in (auth.bp, device.bp, admin.bp, speech.bp, speech_server.bp, admin_records.bp,
                      upstream.bp, admin_oauth.bp):
        app.register_blueprint(blueprint, url_prefix=prefix + (blueprint.url_prefix or ""))
    from . import web
    web.init_app(app)
    app.register_blueprint(speech.root)  # /precise/upload: no version prefix
    app.register_blueprint(speech_server.root)  # the stock speech plugins' routes
    app.register_blueprint(openapi.bp)  # /openapi.json
    def index():
        """What `/` and the API prefix answer: the URL the command prints must work."""
        return jsonify({"name": "ovos-personal-backend", "api": prefix, "admin": "/admin/",
                        "status": "ok"})

    app.add_url_rule("/", "index", index)
    app.add_url_rule(prefix, "api_index", index)
    _register_error_handlers(app)
    return app


def service(app: Flask, name: str):
    """One of the app's service objects ("stt", "tts", ...), for callers outside a request
    (the skill)."""
    return app.extensions["personal_backend"]["services"][name]


def close_services(app) -> None:
    """Stop what the app's services run beside it (the speech worker processes); a later
    request starts them again."""
    services = getattr(app, "extensions", {}).get("personal_backend", {}).get("services", {})
    for service in services.values():
        close = getattr(service, "close", None)
        if callable(close):
            close()


class JSONProvider(DefaultJSONProvider):
    """Flask's JSON answers, unsorted and compact, from one encoder made once: Flask's
    `json.dumps(obj, **options)` builds a new encoder at every call, a good part of what
    encoding an answer cost at each device poll."""

    sort_keys = False
    _encoder = json.JSONEncoder(separators=(",", ":"), default=DefaultJSONProvider.default)

    def response(self, *args, **kwargs) -> Response:
        body = self._encoder.encode(self._prepare_response_obj(args, kwargs))
        return self._app.response_class(body + "\n", mimetype=self.mimetype)


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(BackendError)
    def backend_error(error: BackendError) -> Response:
        return jsonify({"error": error.message}), error.status

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        response = jsonify({"error": error.description or error.name})
        response.status_code = error.code
        for key, value in error.get_headers():
            if key.lower() not in ("content-type", "content-length"):
                response.headers[key] = value
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        LOG.exception(f"unhandled error: {error!r}")
        return jsonify({"error": "internal error; see the server log"}), 500
