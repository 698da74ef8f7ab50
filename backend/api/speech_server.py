"""The house's speech server, in the wire format of OVOS's stock speech plugins.

A device keeps its default plugins (`ovos-stt-plugin-server`, `ovos-tts-plugin-server`)
and only their URL changes, to its speech URL (speech_access.py):

    POST <speech url>/stt?lang=..            WAV body -> the transcript, plain text
    POST <speech url>/lang_detect?valid_langs=..  -> the language, plain text
    GET  <speech url>/v2/synthesize?utterance=..&lang=..[&voice=..]  -> WAV
    GET  <speech url>/synthesize/<utterance>?lang=..                  -> WAV
    GET  <speech url>/status                  -> {"status": "ok", "plugin", "langs", ...}

as ovos-stt-http-server and ovos-tts-server serve them. The same routes answer without
the `/speech/<secret>` prefix only for the callers `speech.anonymous` lets in ("none" by
default; "loopback"; "all"), and `/stt` also when the old `server.public_stt` is on.
A device gets its speech URL from `POST /v1/device/<uuid>/speech` (its token), or the
skill from `speech_access.issue` directly.
"""
import re
from typing import Callable, Optional, Tuple

from flask import Blueprint, Response, g, jsonify, request

from .. import datasets, devices, ratelimit, speech_access
from ..errors import BadRequest, Unauthorized
from ..services.stt import EngineBusy
from . import device_required, get_config, get_service, get_store
from .speech import engine_busy, from_this_machine, request_lang, transcribe_request

bp = Blueprint("speech_server", __name__)          # under the API prefix
root = Blueprint("speech_server_root", __name__)   # the plugins' routes, with or without a secret
root.register_error_handler(EngineBusy, engine_busy)

VOICE = re.compile(r"^[\w.+:@/-]{1,100}\Z")
MAX_LANGS = 32


@bp.post("/device/<uuid>/speech")
@device_required
def issue_speech_url(uuid):
    """A new speech URL for the calling device (the previous one stops working)."""
    secret = speech_access.issue(get_store(), g.uuid)
    return jsonify({"url": speech_access.url(request.host_url, secret)})


@bp.delete("/device/<uuid>/speech")
@device_required
def revoke_speech_url(uuid):
    return jsonify({"revoked": speech_access.revoke(get_store(), g.uuid)})


# ------------------------------------------------------------------ who is calling

def _caller(secret: Optional[str]) -> Tuple[Optional[dict], str]:
    """(the device or None for an anonymous caller, the admission client id).

    A secret must be a device's current one; a wrong one counts against the caller's
    address (429 past the limit, as for activations: a right secret is never refused).
    Without one, `speech.anonymous` decides."""
    store = get_store()
    if secret is not None:
        uuid = speech_access.device_for(store, secret)
        if uuid is None:
            limiter, client = ratelimit.limiter("speech_key"), ratelimit.client_address()
            wait = limiter.retry_after(client)
            limiter.failed(client)
            if wait:
                raise _TooMany(wait)
            raise Unauthorized("unknown or revoked speech URL: ask the backend for a new one")
        store.presence.seen(uuid)
        return devices.get(store, uuid), uuid
    config = get_config()
    anonymous = config["speech"]["anonymous"]
    if anonymous == "all" or (anonymous == "loopback" and from_this_machine()) or \
            (request.endpoint.endswith(".stt") and config["server"]["public_stt"]):
        return None, f"address {request.remote_addr}"
    raise Unauthorized("speech needs this device's speech URL (/speech/<secret>/...); the owner "
                       "can open it to callers without one with speech.anonymous (or "
                       "server.public_stt for /stt)")


class _TooMany(Exception):
    def __init__(self, wait: int):
        super().__init__(wait)
        self.wait = wait


root.register_error_handler(
    _TooMany, lambda e: ratelimit.too_many(e.wait, f"too many wrong speech URLs; wait {e.wait} s"))


def _route(rule: str, methods: Tuple[str, ...]) -> Callable:
    """Register a view at `rule` and at `/speech/<secret>` + `rule`; the view gets the
    caller (device record or None) and its admission client id."""
    def register(view: Callable) -> Callable:
        def anonymous(**kwargs):
            return view(*_caller(None), **kwargs)

        def with_secret(secret: str, **kwargs):
            return view(*_caller(secret), **kwargs)

        # the views' own names: openapi.py finds each route's entry by them
        anonymous.__name__, with_secret.__name__ = view.__name__, f"{view.__name__}_secret"
        root.add_url_rule(rule, view.__name__, anonymous, methods=list(methods))
        root.add_url_rule(f"/{speech_access.PATH}/<secret>{rule}", f"{view.__name__}_secret",
                          with_secret, methods=list(methods))
        return view
    return register


# ------------------------------------------------------------------ STT

@_route("/stt", ("POST",))
def stt(device: Optional[dict], client: str):
    """ovos-stt-plugin-server's request: the transcript as the plain-text body. A device's
    audio is recorded by the same rules as /v1/stt."""
    config = get_config()
    default_lang = (device or {}).get("lang") or config["lang"]
    audio, lang, texts = transcribe_request(default_lang, client)
    if device is not None:
        datasets.record_utterance(get_store(), config, device, audio, texts[0], lang)
    return Response(texts[0], mimetype="text/plain")


@_route("/lang_detect", ("POST",))
def lang_detect(device: Optional[dict], client: str):
    """The spoken language among `valid_langs` (comma separated), as plain text."""
    valid = [lang.strip().lower() for lang in request.args.get("valid_langs", "").split(",")
             if lang.strip()]
    if len(valid) > MAX_LANGS or not all(re.match(r"^[a-z]{2,3}(-[a-z0-9]{2,8}){0,3}\Z", v) for v in valid):
        raise BadRequest(f"valid_langs must be up to {MAX_LANGS} language tags, comma separated")
    stt = get_service("stt")
    with stt.admission.slot(client):
        audio = request.get_data(cache=False)
        return Response(stt.detect_language(audio, valid), mimetype="text/plain")


# ------------------------------------------------------------------ TTS

def _speak(utterance: Optional[str], device: Optional[dict], client: str) -> Response:
    """The WAV of `utterance`: from the phrase cache, else synthesized (an admission slot)."""
    tts = get_service("tts")
    lang = request_lang((device or {}).get("lang") or tts.lang)
    voice = request.args.get("voice", "")
    if voice == "default":
        voice = ""
    if voice and not VOICE.match(voice):
        raise BadRequest("voice must be a voice name of up to 100 letters, digits and ._+:@/-")
    found = tts.cached(utterance, lang, voice)
    if found is None:
        with tts.admission.slot(client):
            found = tts.synthesize(utterance, lang, voice)
    audio, extension = found
    return Response(audio, mimetype="audio/wav" if extension == "wav" else f"audio/{extension}")


@_route("/v2/synthesize", ("GET",))
def synthesize_v2(device: Optional[dict], client: str):
    return _speak(request.args.get("utterance"), device, client)


@_route("/synthesize/<path:utterance>", ("GET",))
def synthesize(device: Optional[dict], client: str, utterance: str):
    return _speak(utterance, device, client)


@_route("/status", ("GET",))
def status(device: Optional[dict], client: str):
    """ovos-tts-server's status (plugin, langs, default_lang, default_voice) and the STT
    engine's under "stt"."""
    return jsonify({"status": "ok", **get_service("tts").status(), "stt": get_service("stt").status()})
