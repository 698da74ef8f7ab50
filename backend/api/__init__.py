"""HTTP blueprints, and what they share: the request's store/config, body parsing, auth,
conditional answers."""
import functools
import hashlib
import hmac

from flask import Response, current_app, g, jsonify, request
from werkzeug.exceptions import UnsupportedMediaType

from .. import pairing, ratelimit, service
from ..errors import BadRequest, Forbidden, Unauthorized
from ..store import Store, check_storable


def get_store() -> Store:
    return current_app.extensions["personal_backend"]["store"]


def get_config() -> dict:
    return current_app.extensions["personal_backend"]["config"]


def get_service(name: str):
    """A service object (stt, mail, ...) built by the app factory."""
    return service(current_app, name)


def json_body(default=None):
    """The request body as JSON; an empty body gives `default`.

    A body must be labelled JSON (`application/json`, what ovos-backend-client and
    mycroft-core send on every request, or `application/*+json`): a web page may send
    text/plain, a form or no label to any address without asking (a CORS "simple"
    request), so a page the owner visits could otherwise pair a device or post as one.
    """
    raw = request.get_data(cache=True)
    if not raw.strip():
        if default is not None:
            return default
        raise BadRequest("a JSON body is required")
    _require_json_label()
    try:
        body = request.get_json(force=True, silent=False)
    except Exception:  # a decoding error, or nesting deep enough to exhaust the recursion limit
        raise BadRequest("the body is not valid JSON") from None
    check_storable(body)  # here too, for routes that pass a body on unstored (e-mail)
    return body


def _require_json_label() -> None:
    """415 unless the request says its body is JSON (see `json_body`)."""
    mimetype = request.mimetype
    if mimetype != "application/json" and not (mimetype.startswith("application/")
                                               and mimetype.endswith("+json")):
        raise UnsupportedMediaType(f"send the body as Content-Type: application/json, "
                                   f"not {mimetype[:60] or 'unlabelled'}")


def conditional_json(data) -> Response:
    """`data` as JSON with a strong ETag (a hash of the exact body), or a 304 with no
    body when the request's If-None-Match names that tag (or is `*`).

    mycroft-core polls its settings with If-None-Match and keeps its copy on a 304
    (api-contract §1.5); ovos-backend-client never sends it and always gets the body."""
    response = jsonify(data)
    etag = hashlib.blake2b(response.get_data(), digest_size=12).hexdigest()
    # If-None-Match compares weakly (RFC 9110 13.1.2): W/"<tag>" matches too; parsed
    # only when sent (ovos-backend-client never sends it)
    if "HTTP_IF_NONE_MATCH" in request.environ and request.if_none_match.contains_weak(etag):
        response = current_app.response_class(status=304)
        del response.headers["Content-Type"]
    response.headers["ETag"] = f'"{etag}"'
    return response


def not_paired(message: str) -> Response:
    """A device 401. The body is plain text on purpose: the client's pairing check is
    `bool(response.json())`, so a JSON error object would count as "paired" (§1.4)."""
    return Response(message, status=401, mimetype="text/plain",
                    headers={"WWW-Authenticate": 'Bearer realm="NOT PAIRED"'})


def device_required(view):
    """Only the device owning the bearer token may call; it must be the `uuid` of the path."""
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        token = pairing.bearer(request.headers.get("Authorization"))
        store = get_store()
        device = pairing.authenticated_device(store, token)
        if device is None:
            return not_paired("device not paired: missing, unknown or revoked token")
        uuid = device["uuid"]
        if "uuid" in kwargs and not hmac.compare_digest(kwargs["uuid"].encode("utf-8", "surrogatepass"), uuid.encode()):
            return not_paired("this token belongs to another device")
        g.uuid, g.device = uuid, device
        store.presence.seen(uuid)
        return view(*args, **kwargs)
    return wrapper


def current_device() -> dict:
    """The calling device's stored record, as `device_required` read it for this request
    (read it, never modify it): reading it again would check its file again."""
    return g.device


def admin_required(view):
    """`Authorization: Bearer <server.admin_key>`; the admin API is off while no key is set.

    The right key is always let in. A request without a key is refused and not counted:
    a web page can send those (`no-cors` fetches) but never a key. Past the limits on
    wrong keys, per address and in total, a wrong key gets 429 (see ratelimit)."""
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        key = get_config()["server"]["admin_key"]
        if not key:
            raise Forbidden("the admin API is disabled: set server.admin_key to enable it")
        token = pairing.bearer(request.headers.get("Authorization"))
        if not token:
            raise Unauthorized("admin key missing or wrong")
        throttle, client = ratelimit.throttle("admin_key"), ratelimit.client_address()
        if hmac.compare_digest(token.encode("utf-8", "surrogatepass"), key.encode()):
            return view(*args, **kwargs)
        wait = throttle.retry_after(client)
        throttle.failed(client)
        if wait:
            return ratelimit.too_many(wait, f"too many wrong admin keys; try again in {wait} s")
        raise Unauthorized("admin key missing or wrong")
    return wrapper
