"""Speech and place services for devices (api-contract §6.1, §6.2, §6.6): speech-to-text,
place lookup, and the wake-word uploads that feed the owner's datasets.

Two blueprints: `bp` goes under the version prefix (`/v1/stt`, ...); `root` holds
`/precise/upload`, which the old backend served without it (where the client sends v1
wake words). The stock speech plugins' routes are in speech_server.py.
"""
import io
import re
from typing import List, Optional, Tuple, Union

from flask import Blueprint, Response, current_app, g, jsonify, request
from werkzeug.formparser import FormDataParser

from .. import datasets, devices, pairing
from ..config import is_loopback
from ..errors import BadRequest
from ..services import geocoding
from ..services.speech import Synthesizer, Transcriber
from ..services.stt import EngineBusy
from ..store import Store
from . import device_required, get_config, get_service, get_store, not_paired

bp = Blueprint("speech", __name__)
root = Blueprint("speech_root", __name__)

LANG = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8}){0,3}\Z")  # \Z: "$" lets a final newline in
QUERY_LIMIT = 200
# the first line of a multipart body: "--" and the boundary (RFC 2046 characters)
BOUNDARY = re.compile(rb"^--([0-9A-Za-z'()+_,./:=?-][0-9A-Za-z'()+_,./:=? -]{0,69})\r?\n")


def build_services(config: dict, store: Store) -> dict:
    """The speech engines, for `app.extensions[...]["services"]`. Cheap: each engine's
    worker process starts, and loads its plugin, on the first request that needs it."""
    return {"stt": Transcriber(config["stt"]),
            "tts": Synthesizer(config["tts"], store.folder("tts-cache"), config["lang"])}


def request_lang(default: str, names: Tuple[str, ...] = ("lang",)) -> str:
    """The language of the request: the first of the query parameters `names` given."""
    given = next((request.args[name] for name in names if request.args.get(name)), "")
    lang = (given or default).strip().lower()
    if not LANG.match(lang):
        raise BadRequest(f"{names[0]} must be a language tag such as en-us")
    return lang


def transcribe_request(default_lang: str, client: str,
                lang_names: Tuple[str, ...] = ("lang",)) -> Tuple[bytes, str, list]:
    """(audio, lang, transcripts) of the request: raw FLAC/WAV body, the language (query
    parameter among `lang_names`), `limit`. It waits for a slot of the engine, counted
    against `client`, before the body is even read (services/stt.py, Admission)."""
    lang = request_lang(default_lang, lang_names)
    stt = get_service("stt")
    with stt.admission.slot(client):
        audio = request.get_data(cache=False)
        texts = stt.transcribe(audio, lang, request.args.get("limit", 1))
    return audio, lang, texts


def engine_busy(error: EngineBusy) -> Response:
    """503 JSON with Retry-After: devices are told when to come back instead of each
    holding a server thread while it waits (services/stt.py, Admission)."""
    response = jsonify({"error": error.message})
    response.status_code = error.status
    response.headers["Retry-After"] = str(error.retry_after)
    return response


bp.register_error_handler(EngineBusy, engine_busy)
root.register_error_handler(EngineBusy, engine_busy)


def _device_transcripts(lang_names: Tuple[str, ...] = ("lang",)) -> List[str]:
    """Transcripts of a paired device's audio (in its language unless the query names
    one); the audio is recorded by the dataset rules whatever route it came by."""
    store, config = get_store(), get_config()
    device = devices.get(store, g.uuid)
    audio, lang, texts = transcribe_request(device.get("lang") or config["lang"], g.uuid, lang_names)
    datasets.record_utterance(store, config, device, audio, texts[0], lang)
    return texts


@bp.post("/stt")
@device_required
def stt():
    return jsonify(_device_transcripts())


@bp.post("/transcribe")
@device_required
def transcribe():
    """Selene's STT route, which the Mark II uses (api-contract §6.1): the language is
    `language` (or `lang`), the answer `{"transcription": text}`, or null when nothing
    was understood (where /stt answers `[""]`)."""
    texts = _device_transcripts(("language", "lang"))
    return jsonify({"transcription": texts[0] or None})


@bp.get("/geolocation")
@device_required
def geolocation():
    """`{"data": location}`; the client reads `["data"]` (api-contract §6.2). No match is a
    404 JSON error: the client fails on it as it would on `{"data": null}` (KeyError vs
    TypeError), and the error says why."""
    query = " ".join(request.args.get("location", "").split())
    if not query:
        raise BadRequest("the location parameter is required, e.g. ?location=Lisbon")
    if len(query) > QUERY_LIMIT:
        raise BadRequest(f"location must be at most {QUERY_LIMIT} characters")
    return jsonify({"data": geocoding.locate(get_config(), query)})


# wake-word uploads ---------------------------------------------------------------------

def _multipart() -> Tuple[dict, dict]:
    """(form, files) of a multipart upload, even when mislabelled.

    ovos-backend-client sends its multipart bodies as `Content-Type: application/json`
    (its default header wins over the boundary requests would set, §6.6), so a body that
    starts with `--<boundary>` is parsed as multipart with that boundary whatever the
    declared type.
    """
    if request.mimetype == "multipart/form-data":
        return request.form, request.files
    raw = request.get_data(cache=True)
    found = BOUNDARY.match(raw)
    if not found:
        return {}, {}
    parser = FormDataParser(max_content_length=current_app.config["MAX_CONTENT_LENGTH"])
    _, form, files = parser.parse(io.BytesIO(raw), "multipart/form-data", len(raw),
                                  {"boundary": found.group(1).decode("ascii")})
    return form, files


def _upload() -> Tuple[Optional[bytes], Union[bytes, str, None]]:
    """(audio, metadata JSON text) from the parts named `audio` and `metadata`: parts
    are found by field name, not file name (old bug 22)."""
    form, files = _multipart()
    audio = files["audio"].read() if "audio" in files else None
    if "metadata" in files:
        metadata = files["metadata"].read()
    else:
        metadata = form.get("metadata")
    return audio, metadata


def _wake_word_upload():
    store = get_store()
    audio, metadata = _upload()
    return jsonify(datasets.upload_wake_word(store, get_config(), devices.get(store, g.uuid),
                                             audio, metadata))


@root.post("/precise/upload")
def precise_upload():
    """v1 (`device_upload_wake_word_v1`): the device is the one owning the token. Without
    a token (mycroft-core 20.2 sends none) the upload is taken only as
    `datasets.anonymous_refusal` allows; a token that is sent must be valid."""
    if pairing.bearer(request.headers.get("Authorization")):
        return _device_precise_upload()
    config = get_config()
    refusal = datasets.anonymous_refusal(config, from_this_machine())
    if refusal:
        return not_paired(refusal)
    audio, metadata = _upload()
    return jsonify(datasets.upload_anonymous_wake_word(get_store(), config, audio, metadata))


@device_required
def _device_precise_upload():
    return _wake_word_upload()


def from_this_machine() -> bool:
    """True when the request comes over loopback (an IPv4 client of a dual-stack socket
    shows as ::ffff:127.0.0.1). The server trusts no X-Forwarded-For (server.py)."""
    address = request.remote_addr or ""
    return is_loopback(address[len("::ffff:"):] if address.startswith("::ffff:") else address)


@bp.post("/device/<uuid>/wake-word-file")
@device_required
def wake_word_file(uuid):
    """v2 (`device_upload_wake_word`, `dataset_upload_wake_word`)."""
    return _wake_word_upload()
