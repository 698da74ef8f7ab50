"""The OpenAPI 3 description of the HTTP API, served at `GET /openapi.json`.

Paths and methods come from the app's url_map, so the document always lists what the
server really routes; what a route needs and takes (device token, admin key or
nothing; query parameters; body) comes from `OPERATIONS`, one compact entry per view.
A route without an entry is left out of the document, and test_openapi fails on it:
the table cannot silently drift from the code. The admin web page is listed minimally
(an HTML page behind a session cookie): it is for browsers, not for clients.

Fuzzers (schemathesis) and client authors read it; nothing in the server does.
"""
import re
from typing import Dict, Iterator, Optional, Tuple

from flask import Blueprint, Flask, current_app, jsonify

bp = Blueprint("openapi", __name__)

JSON = "application/json"
TEXT = "text/plain"
# endpoints served by these blueprints are the browser admin page
PAGE_BLUEPRINTS = ("web",)
IGNORED_METHODS = {"HEAD", "OPTIONS"}

# schemas ------------------------------------------------------------------------------

STR = {"type": "string"}
BOOL = {"type": "boolean"}
NUM = {"type": "number"}
OBJ = {"type": "object"}
STRINGS = {"type": "array", "items": STR}


def obj(required: Tuple[str, ...] = (), **properties) -> dict:
    schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


REF = {name: {"$ref": f"#/components/schemas/{name}"}
       for name in ("Error", "Login", "Location", "SkillMeta", "SkillSettings")}

SCHEMAS = {
    "Error": obj(("error",), error=STR),
    "Login": obj(("uuid", "accessToken", "refreshToken", "expiration"), uuid=STR,
                 accessToken=STR, refreshToken=STR, expiration={"type": "integer"}),
    "Location": obj(("coordinate", "timezone"),
                    city=obj(code=STR, name=STR, state=obj(
                        code=STR, name=STR, country=obj(code=STR, name=STR))),
                    coordinate=obj(("latitude", "longitude"), latitude=NUM, longitude=NUM),
                    timezone=obj(("code",), code=STR, name=STR)),
    "SkillMeta": obj(sections={"type": "array", "items": obj(name=STR, fields={
        "type": "array", "items": obj(name=STR, type=STR, label=STR, value=STR)})}),
    "SkillSettings": obj(skill_id=STR, display_name=STR, settings=OBJ, settings_json=OBJ,
                         meta={"$ref": "#/components/schemas/SkillMeta"},
                         metadata_json=OBJ),
}

SECURITY = {
    "device": {"type": "http", "scheme": "bearer",
               "description": "the access token a device got at activation"},
    "admin": {"type": "http", "scheme": "bearer", "description": "server.admin_key"},
    "session": {"type": "apiKey", "in": "cookie", "name": "pb_admin",
                "description": "the admin web page's login session"},
}

# path parameters, by name (every other one is a plain string)
PATH_PARAMETERS = {
    "uuid": {**STR, "description": "a device id"},
    "code": {**STR, "description": "a six-character pairing code", "example": "ACE347"},
    "endpoint": {"enum": ["onecall", "weather", "forecast", "forecast/daily"]},
}

# the operations ---------------------------------------------------------------------------


def op(summary: str, auth: Optional[str] = None, query: Optional[dict] = None,
       required: Tuple[str, ...] = (), body: Optional[dict] = None, media: str = JSON,
       example=None, answers: str = JSON, returns: Optional[dict] = None,
       refusals: str = JSON, upstream: str = "", etag: bool = False) -> dict:
    """One operation's entry. `auth`: "device", "admin", "session" or None; `query`:
    {name: schema}, `required` among them; `body`: the request schema, sent as `media`,
    `example` a valid one; `answers`, `returns`: media type and schema of a 200;
    `refusals`: media type of a 4xx; `upstream`: what a 5xx of this route means (it
    calls a configured service); `etag`: the 200 carries an ETag, and a request whose
    If-None-Match names it gets a 304."""
    return {"summary": summary, "auth": auth, "query": query or {}, "required": required,
            "body": body, "media": media, "example": example, "answers": answers,
            "returns": returns or {}, "refusals": refusals, "upstream": upstream, "etag": etag}


def device(summary: str, **kwargs) -> dict:
    return op(summary, auth="device", **kwargs)


def polled(summary: str, **kwargs) -> dict:
    """A device read answered with an ETag (304 when unchanged)."""
    return device(summary, etag=True, **kwargs)


def admin(summary: str, **kwargs) -> dict:
    return op(summary, auth="admin", **kwargs)


AUDIO = {"type": "string", "format": "binary"}
UPLOAD = obj(audio=AUDIO, metadata=STR)
SKILL_UPLOAD = obj(skill_gid=STR, identifier=STR, display_name=STR,
                   skillMetadata=REF["SkillMeta"])
DEVICE_FIELDS = dict(name=STR, device_location=STR, email=STR, opt_in=BOOL,
                     isolated_skills=BOOL, lang=STR)
PREFS = dict(time_format={"enum": ["full", "half"]}, date_format={"enum": ["DMY", "MDY"]},
             system_unit={"enum": ["metric", "imperial"]}, lang=STR, wake_word=STR,
             ww_config=OBJ, ww_module=STR, tts_module=STR, tts_config=OBJ)
RECORDING = obj(transcription=STR, metadata=OBJ, audio_b64=STR, uuid=STR, tag=STR,
                speaker_type=STR)
METRIC = obj(metric_type=STR, metadata=OBJ, uuid=STR)
DEFINITION = obj(name=STR, lang=STR, plugin=STR, ww_config=OBJ, tts_config=OBJ,
                 offline=BOOL, gender=STR)
OAUTH_APP = obj(token_id=STR, oauth_service=STR, client_id=STR, client_secret=STR,
                auth_endpoint=STR, token_endpoint=STR, refresh_endpoint=STR,
                callback_endpoint=STR, scope=STR, shell_integration=BOOL)
WEATHER = "OpenWeatherMap: 503 without microservices.owm_key, 502/504 when it fails"
WOLFRAM = "Wolfram|Alpha: 503 without microservices.wolfram_key, 502/504 when it fails"
WOLFRAM_QUERY = {"input": {**STR, "example": "how far is the moon"}, "i": STR, "units": STR,
                 "latlong": STR, "geolocation": STR}
STT_QUERY = {"lang": {**STR, "example": "en-us"}, "limit": {"type": "integer"}}
STT = "the STT plugin: 503 when it cannot be loaded or fails"

TTS = "the TTS plugin: 503 when it cannot be loaded or fails; 503 + Retry-After when busy"


def speech_server_operations() -> Dict[str, dict]:
    """The stock speech plugins' routes (speech_server.py), each served twice: under a
    device's speech URL (its secret in the path is the credential) and bare, for the
    callers `speech.anonymous` admits (and /stt while server.public_stt is on)."""
    speak = {"lang": {**STR, "example": "en-us"}, "voice": STR}
    views = {
        "stt": ("speech to text as ovos-stt-plugin-server reads it (WAV body, plain-text "
                "transcript)", dict(query={"lang": STT_QUERY["lang"]}, body=AUDIO,
                                    media="application/octet-stream", answers=TEXT, upstream=STT)),
        "lang_detect": ("the language spoken, among valid_langs (comma separated)",
                        dict(query={"valid_langs": {**STR, "example": "en-us,pt-pt"}}, body=AUDIO,
                             media="application/octet-stream", answers=TEXT, upstream=STT)),
        "synthesize_v2": ("text to speech as ovos-tts-plugin-server asks for it (a WAV)",
                          dict(query={"utterance": {**STR, "example": "hello"}, **speak},
                               required=("utterance",), answers="audio/wav", upstream=TTS)),
        "synthesize": ("text to speech, the utterance in the path (a WAV)",
                       dict(query=speak, answers="audio/wav", upstream=TTS)),
        "status": ("the TTS engine as ovos-tts-server describes it, the STT engine under stt",
                   dict()),
    }
    operations = {}
    for view, (summary, kwargs) in views.items():
        operations[f"speech_server_root.{view}"] = op(
            f"{summary}; without a speech URL only if speech.anonymous allows", **kwargs)
        operations[f"speech_server_root.{view}_secret"] = op(
            f"{summary}; the device's speech URL secret is the credential", **kwargs)
    return operations


# valid bodies (clients read them as documentation, fuzzers start from them)
LISBON = {"city": {"name": "Lisbon", "state": {"name": "Lisbon", "country": {
    "code": "PT", "name": "Portugal"}}}, "coordinate": {"latitude": 38.72, "longitude": -9.14},
    "timezone": {"code": "Europe/Lisbon", "name": "Europe/Lisbon"}}
SKILL_UPLOADED = {"skill_gid": "ovos-skill-demo|main", "display_name": "Demo", "skillMetadata": {
    "sections": [{"name": "Options", "fields": [
        {"name": "volume", "type": "number", "label": "Volume", "value": "5"}]}]}}
SKILL_SET = {"skill_id": "ovos-skill-demo", "display_name": "Demo", "settings": {"volume": 5}}
SKILL_PUSH = obj(("skill_id", "settings"), skill_id=STR, gid=STR, settings=OBJ)
SKILL_SYNCED = obj(("skill_id", "gid", "settings", "updated_at"), skill_id=STR, gid=STR,
                   settings=OBJ, updated_at=NUM)
TINY_WAV = "UklGRjQAAABXQVZFZm10IBAAAAABAAEAgD4AAAB9AAACABAAZGF0YRAAAAAAAAAAAAAAAAAAAAAAAAAA"
DEMO_METRIC = {"metric_type": "timing", "metadata": {"duration": 0.2}}
DEMO_TOKEN = {"access_token": "demo-access", "token_type": "Bearer"}
OAUTH_APP_SET = {"client_id": "demo", "auth_endpoint": "https://auth.example.org/authorize",
                 "token_endpoint": "https://auth.example.org/token", "scope": "read"}

OPERATIONS: Dict[str, dict] = {
    "index": op("what this server is"),
    "api_index": op("what this server is (the API prefix answers too)"),
    "openapi.document": op("this document"),
    # pairing (api-contract §2)
    "auth.device_code": op("start pairing: a code to show and a secret token", query={
        "state": {**STR, "example": "0b7e0e5a-6c46-4c38-9a4e-0a9f0c2b8d21"}, "packaging": STR},
        required=("state",)),
    "auth.device_activate": op(
        "exchange the issued (state, token) for a login; refusals are plain text (a JSON "
        "body would be saved as the login); too many failures from one address answer 429",
        body=obj(("state", "token"), state=STR, token=STR, coreVersion=STR, platform=STR,
                 platform_build=STR, enclosureVersion=STR),
        returns=REF["Login"], refusals=TEXT),
    "auth.refresh_token": device("rotate the device's tokens (access or refresh token)",
                                 returns=REF["Login"]),
    # device (§3-§5)
    "device.info": polled("the device's identity"),
    "device.report_version": device("report versions", body=obj(
        coreVersion=STR, platform=STR, platform_build=STR, enclosureVersion=STR),
        example={"coreVersion": "0.0.9", "platform": "picroft", "enclosureVersion": "1.0"}),
    "device.setting": polled("the remote mycroft.conf fragment"),
    "device.location": polled("the device's location"),
    "device.subscription": device("the subscription (always free)"),
    "device.voice": device("premium voice link (none)", query={"arch": {**STR, "example": "arm"}},
                           required=("arch",)),
    "device.skills_manifest": device("installed skills", body=obj(
        skills={"type": "array", "items": obj(name=STR, skill_gid=STR)}, blacklist=STRINGS),
        example={"skills": [{"name": "ovos-skill-demo", "skill_gid": "ovos-skill-demo|main"}],
                 "blacklist": []}),
    "device.metric": device("report a metric", body=OBJ,
                            example={"intent_type": "demo", "duration": 0.2}),
    "device.skills_v1": polled("skill settings, v1 shape"),
    "device.upload_skill_v1": device("upload skill settings (v1)", body=SKILL_UPLOAD,
                                     example=SKILL_UPLOADED),
    "device.skills_v2": polled("skill settings, v2 shape"),
    "device.skills_sync": polled(
        "skill settings to sync (our extension): values by skill id, with their gid and the "
        "time they last changed", returns=obj(("skills",), skills={
            "type": "object", "additionalProperties": obj(
                ("gid", "settings", "updated_at"), gid=STR, settings=OBJ, updated_at=NUM)})),
    "device.push_skill_values": device(
        "merge values into a skill's settings (our extension); names starting with _ are "
        "refused", body=SKILL_PUSH, returns=SKILL_SYNCED,
        example={"skill_id": "ovos-skill-demo", "settings": {"volume": 5}}),
    "device.upload_settings_meta": device("upload a settingsmeta", body=SKILL_UPLOAD,
                                          example=SKILL_UPLOADED),
    # services (§6)
    "upstream.weather": device("OpenWeatherMap proxy", upstream=WEATHER, query={
        "lat": {**STR, "example": "38.72"}, "lon": {**STR, "example": "-9.14"}, "units": STR,
        "lang": STR, "exclude": STR, "cnt": STR}),
    "upstream.wolfram_spoken": device("Wolfram|Alpha spoken answer", upstream=WOLFRAM,
                                      query=WOLFRAM_QUERY, answers=TEXT),
    "upstream.wolfram_simple": device("Wolfram|Alpha image answer", upstream=WOLFRAM,
                                      query=WOLFRAM_QUERY, answers="image/gif"),
    "upstream.wolfram_full": device("Wolfram|Alpha full answer", upstream=WOLFRAM,
                                    query=WOLFRAM_QUERY),
    "upstream.wolfram_xml": device("Wolfram|Alpha full answer as XML", upstream=WOLFRAM,
                                   query=WOLFRAM_QUERY, answers="text/xml"),
    "upstream.send_message": device(
        "e-mail the owner", body=obj(title=STR, body=STR, sender=STR),
        example={"title": "Hello", "body": "from a skill", "sender": "demo skill"},
        upstream="SMTP: 503 without microservices.email, 502/504 when the server fails"),
    "upstream.oauth_token": device(
        "the device's OAuth token (JSON null and 404 when none)", query={"refresh": STR},
        upstream="the OAuth provider, when a refresh is asked: 502/503 when it fails"),
    "upstream.oauth_auth_url": device("the provider URL to authorize an app", answers=TEXT),
    "upstream.oauth_callback": op(
        "the OAuth provider's redirect (the issued state is the credential)",
        query={"state": STR, "code": STR, "error": STR},
        upstream="the OAuth provider: 502/504 when the code exchange fails"),
    "speech.stt": device("speech to text (FLAC or WAV body)", query=STT_QUERY,
                         body=AUDIO, media="application/octet-stream", upstream=STT),
    "speech.transcribe": device(
        "speech to text, Selene's shape for the Mark II: {transcription: text, or null when "
        "nothing was understood}", query={"language": {**STR, "example": "en-us"}, "lang": STR,
                                          "limit": {"type": "integer"}},
        body=AUDIO, media="application/octet-stream", upstream=STT,
        returns=obj(("transcription",), transcription={**STR, "nullable": True})),
    "speech_server.issue_speech_url": device(
        "a new speech URL for this device (the previous one stops working): the URL OVOS's "
        "stock speech plugins take", returns=obj(("url",), url=STR)),
    "speech_server.revoke_speech_url": device("stop this device's speech URL from working",
                                              returns=obj(("revoked",), revoked=BOOL)),
    **speech_server_operations(),
    "speech.geolocation": device("find a place", query={"location": {**STR, "example": "Lisbon"}},
                                 required=("location",)),
    "speech_root.precise_upload": device(
        "upload a wake word (v1). Without a token (mycroft-core 20.2) only while "
        "listener.record_wakewords is on, and from this machine unless "
        "listener.accept_anonymous_wakewords", body=UPLOAD, media="multipart/form-data"),
    "speech.wake_word_file": device("upload a wake word (v2)", body=UPLOAD,
                                    media="multipart/form-data"),
    # admin (§7)
    "admin.pending_pairings": admin("pairings waiting for approval"),
    "admin.approve_pairing": admin("approve a pairing code"),
    "admin.deny_pairing": admin("deny a pairing code"),
    "admin.undeny_pairing": admin("take a denial back: the code waits for approval again"),
    "admin.pair": admin("create or re-key a device; its login", returns=REF["Login"]),
    "admin.set_device_info": admin("device info", body=obj(**DEVICE_FIELDS), example={
        "name": "Kitchen", "opt_in": True, "lang": "pt-pt", "email": "owner@example.org"}),
    "admin.set_device_location": admin("device location", body=REF["Location"], example=LISBON),
    "admin.set_device_prefs": admin("device preferences", body=obj(**PREFS), example={
        "time_format": "half", "system_unit": "imperial", "wake_word": "hey demo",
        "ww_config": {"module": "ovos-ww-plugin-vosk"}}),
    "admin.list_devices": admin("every device"),
    "admin.get_device": admin("one device"),
    "admin.create_device": admin("create or update a device", body=obj(
        ("uuid",), uuid=STR, token=STR, **{**DEVICE_FIELDS, **PREFS}, location=REF["Location"],
        ww_id=STR, voice_id=STR), example={"uuid": "demo-device", "name": "Hall"}),
    "admin.update_device": admin("update a device", body=obj(
        **DEVICE_FIELDS, location=REF["Location"], ww_id=STR, voice_id=STR),
        example={"name": "Hall", "device_location": "upstairs", "location": LISBON}),
    "admin.delete_device": admin("forget a device and its tokens"),
    "admin.list_shared_settings": admin("shared skill settings"),
    "admin.get_shared_settings": admin("one skill's shared settings"),
    "admin.create_shared_settings": admin("create shared settings", body=REF["SkillSettings"],
                                          example=SKILL_SET),
    "admin.update_shared_settings": admin("set shared settings", body=REF["SkillSettings"],
                                          example=SKILL_SET),
    "admin.delete_shared_settings": admin("forget shared settings"),
    "admin.list_device_settings": admin("a device's own skill settings"),
    "admin.get_device_settings": admin("one skill's settings on a device"),
    "admin.create_device_settings": admin("create a device's skill settings",
                                          body=REF["SkillSettings"], example=SKILL_SET),
    "admin.update_device_settings": admin("set a device's skill settings",
                                          body=REF["SkillSettings"], example=SKILL_SET),
    "admin.delete_device_settings": admin("forget a device's skill settings"),
    "admin.get_backend_config": admin("the configuration, secrets masked"),
    "admin.update_backend_config": admin("change the configuration",
                                         body=obj(("config",), config=OBJ)),
    "admin.list_definitions": admin("wake-word or voice definitions"),
    "admin.get_definition": admin("one definition"),
    "admin.create_definition": admin("add a definition", body=DEFINITION, example={
        "name": "demo", "lang": "en-us", "plugin": "ovos-demo-plugin"}),
    "admin.put_definition": admin("create or replace a definition", body=DEFINITION, example={
        "name": "demo", "lang": "en-us", "plugin": "ovos-demo-plugin"}),
    "admin.delete_definition": admin("forget a definition"),
    "admin_records.list_recordings": admin("recordings (no audio)", query={"uuid": STR}),
    "admin_records.get_recording": admin("one recording, audio in base64"),
    "admin_records.recording_audio": admin("one recording's audio", answers="audio/wav"),
    "admin_records.create_recording": admin("add a recording", body=RECORDING, example={
        "transcription": "hey demo", "metadata": {"name": "hey demo"}, "audio_b64": TINY_WAV}),
    "admin_records.update_recording": admin("change a recording", body=RECORDING,
                                            example={"transcription": "hey demo", "tag": "noise"}),
    "admin_records.delete_recording": admin("forget a recording"),
    "admin_records.list_metrics": admin("metrics", query={
        "uuid": STR, "metric_type": STR, "since": {**STR, "example": "0"}, "until": STR}),
    "admin_records.get_metric": admin("one metric"),
    "admin_records.create_metric": admin("add a metric", body=METRIC, example=DEMO_METRIC),
    "admin_records.create_device_metric": admin("add a metric of a device (the path id is "
                                                "the device uuid)", body=METRIC,
                                                example=DEMO_METRIC),
    "admin_records.update_metric": admin("change a metric", body=METRIC, example=DEMO_METRIC),
    "admin_records.delete_metric": admin("forget a metric"),
    "admin_oauth.list_apps": admin("OAuth apps"),
    "admin_oauth.get_app": admin("one OAuth app"),
    "admin_oauth.create_oauth_app": admin("register an OAuth app", body=OAUTH_APP,
                                          example={"token_id": "demo", **OAUTH_APP_SET}),
    "admin_oauth.update_app": admin("change an OAuth app", body=OAUTH_APP, example=OAUTH_APP_SET),
    "admin_oauth.delete_app": admin("forget an OAuth app"),
    "admin_oauth.household_auth_url": admin("authorize an app for every device",
                                            answers=TEXT),
    "admin_oauth.list_tokens": admin("OAuth tokens, secrets masked"),
    "admin_oauth.get_token": admin("one OAuth token, secrets included"),
    "admin_oauth.create_token": admin("store an OAuth token",
                                      body=obj(token_id=STR, token_data=OBJ), example={
                                          "token_id": "demo", "token_data": DEMO_TOKEN}),
    "admin_oauth.update_token": admin("replace an OAuth token", body=obj(token_data=OBJ),
                                      example={"token_data": DEMO_TOKEN}),
    "admin_oauth.delete_token": admin("forget an OAuth token"),
}

HTML, FORM = "text/html", "application/x-www-form-urlencoded"
PAGE = op("admin web page (for browsers)", auth="session", answers=HTML, refusals=HTML)
PAGE_FORM = op("admin web page form (needs the session's csrf_token)", auth="session",
               body={"type": "object", "additionalProperties": STR}, media=FORM,
               answers=HTML, refusals=HTML)
# what the admin page serves before login
PUBLIC_PAGES = ("web.login", "web.static", "static")
PUBLIC_PAGE = op("the login form, the page's CSS and JS", answers=HTML, refusals=HTML)
LOGIN = op("log in to the admin web page", body=obj(admin_key=STR, csrf_token=STR, next=STR),
           media=FORM, answers=HTML, refusals=HTML)


# building the document ---------------------------------------------------------------------

CONVERTER = re.compile(r"<(?:[a-z]+(?:\([^)]*\))?:)?([A-Za-z_][A-Za-z0-9_]*)>")


def operation_key(app: Flask, endpoint: str) -> str:
    """`<blueprint>.<view function>`: views registered several times under different
    endpoint names (one per recording kind, per definition catalogue) share one entry."""
    blueprint = endpoint.rpartition(".")[0]
    if not blueprint:
        return endpoint
    return f"{blueprint}.{getattr(app.view_functions.get(endpoint), '__name__', endpoint)}"


def entry(app: Flask, endpoint: str, method: str) -> Optional[dict]:
    """The table entry of a route, or None when it has none."""
    if endpoint in PUBLIC_PAGES:
        return LOGIN if method == "POST" else PUBLIC_PAGE
    if endpoint.rpartition(".")[0] in PAGE_BLUEPRINTS:
        return PAGE_FORM if method == "POST" else PAGE
    return OPERATIONS.get(operation_key(app, endpoint))


def routes(app: Flask) -> Iterator[Tuple[str, str, str, list]]:
    """(OpenAPI path, method, endpoint, path parameter names) of every route served.

    Flask may route two shapes that OpenAPI calls identical (`/metrics/<metric_id>` PUT
    and `/metrics/<uuid>` POST): the first name seen is used for both."""
    names_by_shape: Dict[str, list] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        names = CONVERTER.findall(rule.rule)
        shape = CONVERTER.sub("{}", rule.rule)
        names = names_by_shape.setdefault(shape, names)
        path = shape.format(*(f"{{{name}}}" for name in names))
        for method in sorted(rule.methods - IGNORED_METHODS):
            yield path, method.lower(), rule.endpoint, names


def _operation(spec: dict, operation_id: str, path_names: list) -> dict:
    parameters = [{"name": name, "in": "path", "required": True,
                   "schema": PATH_PARAMETERS.get(name, STR)} for name in path_names]
    parameters += [{"name": name, "in": "query", "required": name in spec["required"],
                    "schema": schema} for name, schema in spec["query"].items()]
    refusal = {"schema": REF["Error"] if spec["refusals"] == JSON else STR}
    responses = {"200": {"description": "success",
                         "content": {spec["answers"]: {"schema": spec["returns"]}}},
                 "4XX": {"description": "refused", "content": {spec["refusals"]: refusal}}}
    if spec["etag"]:
        responses["200"]["headers"] = {"ETag": {"description": "a strong tag of the body",
                                                "schema": STR}}
        responses["304"] = {"description": "not modified: If-None-Match names the current "
                                           "ETag (no body)"}
    if spec["auth"] == "device":
        responses["401"] = {"description": "not paired (plain text: the client would take "
                                           "any JSON object for a yes)",
                            "content": {TEXT: {"schema": STR}}}
    if spec["upstream"]:
        responses["5XX"] = {"description": spec["upstream"],
                            "content": {JSON: {"schema": REF["Error"]}}}
    operation = {"operationId": operation_id, "summary": spec["summary"],
                 "parameters": parameters, "responses": responses,
                 "security": [{spec["auth"]: []}] if spec["auth"] else []}
    if spec["body"] is not None:
        content = {"schema": spec["body"]}
        if spec["example"] is not None:
            content["example"] = spec["example"]
        operation["requestBody"] = {"required": True, "content": {spec["media"]: content}}
    return operation


def build(app: Flask) -> dict:
    """The OpenAPI document of `app` (routes without a table entry are left out)."""
    paths: Dict[str, dict] = {}
    for path, method, endpoint, names in routes(app):
        spec = entry(app, endpoint, method.upper())
        if spec is not None:
            # one view may serve a method on two rules (`/voice_recs`, `/voice_recs/<uuid>`)
            operation_id = f"{endpoint}.{method}" + "".join(f".{name}" for name in names)
            paths.setdefault(path, {})[method] = _operation(spec, operation_id, names)
    return {
        "openapi": "3.0.3",
        "info": {"title": "ovos-personal-backend", "version": "1",
                 "description": "The personal backend of Mycroft/OVOS devices: pairing, "
                                "device settings, services and the admin API."},
        "paths": paths,
        "components": {"schemas": SCHEMAS, "securitySchemes": SECURITY},
    }


@bp.get("/openapi.json")
def document():
    return jsonify(build(current_app))
