"""The admin pages. Each view calls the same domain functions as the admin API, so a
change made here is checked exactly as one made through the client."""
import io
import json
import time
from datetime import datetime
from typing import Optional, Tuple

from flask import (Blueprint, Response, abort, current_app, flash, jsonify, redirect,
                   render_template, request, url_for)
from werkzeug.exceptions import HTTPException

from .. import config as config_module
from .. import backup, datasets, definitions, devices, metrics, pairing, reconfigure, skill_settings
from ..api import get_config, get_service, get_store
from ..errors import BackendError, BadRequest, NotFound
from ..services import places
from . import charts, forms, security

bp = Blueprint("web", __name__, url_prefix="/admin", template_folder="templates",
               static_folder="static")

PUBLIC_ENDPOINTS = ("web.login", "web.static")
PAGE_SIZE = 50
METRICS_SHOWN = 200
RECORDING_KINDS = {datasets.UTTERANCES: "Utterances", datasets.WAKEWORDS: "Wake words"}
AUDIO_TAGS = ("wake_word", "not_wake_word", "noise", "silence", datasets.UNTAGGED)
SPEAKER_TAGS = ("male", "female", "child", datasets.UNTAGGED)


def _admin_key() -> str:
    return get_config()["server"]["admin_key"]


def _config_path() -> str:
    return current_app.extensions["personal_backend"]["config_path"]


# every request -----------------------------------------------------------------------------

@bp.before_request
def guard():
    """Disabled without an admin key; every POST must come from this page itself and
    carry the CSRF token; every page but the login needs a live session."""
    if request.endpoint == "web.static":
        return None
    if not _admin_key():
        return render_template("web/disabled.html"), 403
    if request.method == "POST" and security.from_another_site(get_config()["server"]["url"]):
        return render_template("web/error.html", title="Refused",
                               message="This form came from another site, so it was not "
                                       "carried out. Use the admin page itself."), 403
    if security.session_lost():
        return _session_lost()
    if request.method == "POST" and not security.csrf_ok():
        return render_template("web/error.html", title="Form expired",
                               message="This form was too old or came from another site. "
                                       "Go back, reload the page and try again."), 400
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    state = security.session_state(_admin_key(), touch=request.endpoint != "web.pending_json")
    if state == "ok":
        return None
    if request.endpoint == "web.pending_json":
        return jsonify({"error": "log in again"}), 401
    if state == "expired":
        flash("Your session ended. Please log in again.", "info")
    elif state == "key-changed":
        flash("The admin key changed. Log in with the new key.", "info")
    return redirect(url_for("web.login", next=request.full_path.rstrip("?")))


def _session_lost():
    """A session cookie from before a restart: the login page says why it is shown
    (rather than appearing as if nobody had ever logged in). A form sent with it cannot
    be trusted (its CSRF token died with the session): log in, then send it again."""
    flash("The backend restarted, so your session ended. Please log in again.", "info")
    if request.endpoint == "web.pending_json":
        return jsonify({"error": "log in again"}), 401
    if request.endpoint == "web.login" and request.method == "GET":
        return None
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("web.login", next=target))


bp.after_request(security.add_headers)


@bp.app_context_processor
def _template_globals():
    return {"csrf_token": security.csrf_token, "csrf_field": security.CSRF_FIELD}


@bp.app_template_filter("pb_time")
def _format_time(timestamp) -> str:
    if not isinstance(timestamp, (int, float)) or not timestamp:
        return "–"
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


@bp.app_template_filter("pb_ago")
def _format_ago(timestamp) -> str:
    seconds = max(0, int(time.time() - (timestamp or 0)))
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count > 1 else ''} ago"
    return "just now"


@bp.errorhandler(BackendError)
def _backend_error(error: BackendError):
    return render_template("web/error.html", title="Something went wrong" if error.status >= 500
                           else "Not possible", message=error.message), error.status


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException):
    """The page's own errors (an unknown address, a wrong method) as a page, not the
    API's JSON: a person reads these."""
    if error.code == 404:
        title, message = "Page not found", (f"There is no page at {request.path[:300]}. "
                                            "The address may be mistyped or out of date.")
    else:
        title, message = error.name, error.description or error.name
    # a missing static file is asked for before any login: no navigation for a stranger
    response = Response(render_template("web/error.html", title=title, message=message,
                                        nav=request.endpoint != "web.static"), status=error.code)
    for key, value in error.get_headers():
        if key.lower() not in ("content-type", "content-length"):
            response.headers[key] = value
    return response


@bp.route("/<path:unknown>", methods=["GET", "POST"])
def not_found(unknown):
    """Any other address under /admin: routing 404s do not reach a blueprint's error
    handler (the app's would answer JSON), so this rule, the least specific, catches them."""
    abort(404)


def _back(endpoint: str, **values) -> Response:
    return redirect(url_for(endpoint, **values))


# login --------------------------------------------------------------------------------------

def _safe_next(target: Optional[str]) -> str:
    """Only a path on this page: never an open redirect to another site."""
    if target and target.startswith("/admin") and not target.startswith("//"):
        return target
    return url_for("web.dashboard")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "GET":
        if security.session_state(_admin_key()) == "ok":
            return redirect(_safe_next(request.args.get("next")))
        return render_template("web/login.html", next=request.args.get("next", ""))
    if security.key_matches(request.form.get("admin_key", ""), _admin_key()):
        security.start_session(_admin_key())
        return redirect(_safe_next(request.form.get("next")))
    return _wrong_key(request.remote_addr or "?")


def _wrong_key(client: str) -> Response:
    """The login page again: 401, or 429 once `client` (or everyone together) failed
    too often. Only wrong keys get here, so failures never keep the right key out."""
    throttle = current_app.extensions["personal_backend_web"]["throttle"]
    wait = throttle.retry_after(client)
    throttle.failed(client)
    error = (f"Too many failed attempts. Try again in {wait} seconds." if wait
             else "That is not the admin key.")
    response = Response(render_template("web/login.html", next=request.form.get("next", ""),
                                        error=error), status=429 if wait else 401)
    if wait:
        response.headers["Retry-After"] = str(wait)
    return response


@bp.post("/logout")
def logout():
    security.end_session()
    flash("You are logged out.", "info")
    return _back("web.login")


# dashboard and pairing ------------------------------------------------------------------

@bp.get("/")
def dashboard():
    config, store = get_config(), get_store()
    all_devices = devices.list_all(store)
    pending = pairing.pending(store)
    started = current_app.extensions["personal_backend_web"]["started_at"]
    return render_template(
        "web/dashboard.html", config=config, url=config_module.public_url(config),
        snippet=json.dumps(config_module.device_snippet(config_module.public_url(config),
                                                        config["server"]["version"]), indent=2),
        devices=all_devices, paired=sum(1 for d in all_devices if d.get("tokens")),
        pending=pending, pending_codes=" ".join(p["code"] for p in pending), started=started,
        denied=pairing.denied(store),
        loopback=config_module.is_loopback(config["server"]["host"]))


@bp.get("/pending.json")
def pending_json():
    """What the dashboard polls to notice a device asking to pair."""
    return jsonify({"codes": [p["code"] for p in pairing.pending(get_store())]})


@bp.post("/pairings/approve")
def approve_code():
    """Approve the code a device says or shows."""
    code = request.form.get("code", "")
    try:
        pairing.approve(get_store(), code)
    except NotFound:
        flash(f"No device is waiting with code {code.strip().upper()[:16]}. "
              "Check the code, or ask the device to start pairing again.", "error")
    else:
        flash(f"Code {code.strip().upper()} approved: the device finishes pairing "
              "within a few seconds.", "info")
    return _back("web.dashboard")


PAIRING_DECISIONS = {
    "approve": (pairing.approve, "Code {code} approved: the device finishes pairing within a few seconds."),
    "deny": (pairing.deny, "Code {code} denied: the device is told so when it next asks. "
                           "Changed your mind? Undo it below."),
    "undeny": (pairing.undeny, "Code {code} is waiting for your approval again."),
}


@bp.post("/pairings/<code>/<action>")
def decide_pairing(code, action):
    """Approve or deny a waiting device, or take a denial back."""
    if action not in PAIRING_DECISIONS:
        abort(404)
    decide, message = PAIRING_DECISIONS[action]
    decided = decide(get_store(), code)
    flash(message.format(code=decided["code"]), "info")
    return _back("web.dashboard")


@bp.post("/pairing-mode")
def pairing_mode():
    mode = request.form.get("mode", "")
    if mode not in ("auto", "confirm"):
        raise BadRequest("choose automatic or confirmed pairing")
    reconfigure.update(get_config(), _config_path(), {"server": {"pairing": mode}})
    flash("Devices now pair without asking." if mode == "auto"
          else "Each new device now waits for your approval.", "info")
    return _back("web.dashboard")


# devices ------------------------------------------------------------------------------------

@bp.get("/devices")
def device_list():
    return render_template("web/devices.html", devices=devices.list_all(get_store()))


def _device_page(uuid: str, status: int = 200, error: str = "", form=None, places_found=None,
                 query: str = "", invalid: str = ""):
    store = get_store()
    device = devices.get(store, uuid)
    if form:  # show what was typed, not the stored values, when it was refused
        device.update(forms.device_changes(form))
    return render_template(
        "web/device.html", device=device, choices=devices.CHOICES, error=error, invalid=invalid,
        labels=forms.DEVICE_LABELS,
        definition_fields=_definition_fields(store),
        place=devices.describe_location(device["location"]),
        places=places_found, query=query, row=devices.admin_view(store, device),
        skills={s["skill_id"]: s for s in skill_settings.device_list(store, uuid)}), status


def _definition_fields(store) -> list:
    """(field, label, options) for the wake-word and voice catalogues that have entries."""
    fields = []
    for kind, label in ((definitions.WAKE_WORD, "Wake word"), (definitions.VOICE, "Voice")):
        entries = definitions.list_all(store, kind)
        if entries:
            options = [("", "(as set on the device)")] + [(e[kind.id_key], e["name"]) for e in entries]
            fields.append((kind.id_key, label, options))
    return fields


@bp.get("/devices/<uuid>")
def device_page(uuid):
    return _device_page(uuid)


@bp.post("/devices/<uuid>")
def device_save(uuid):
    store = get_store()
    try:
        changes = definitions.device_changes(store, forms.device_changes(request.form))
        devices.update(store, uuid, changes)
    except BadRequest as e:
        refused = forms.labelled(e, forms.DEVICE_LABELS)
        return _device_page(uuid, 400, refused.message, form=request.form, invalid=refused.field)
    flash("Device saved. It picks up the change the next time it syncs.", "info")
    return _back("web.device_page", uuid=uuid)


def _place_search(query: str) -> list:
    query = query.strip()
    return places.search(query, 8) if query else []


def _place_query() -> Tuple[str, list, str]:
    """(query, places found, error) of a place search; the error names the search field
    ("q", marked on the page) by its label."""
    query = request.args.get("q", "")
    found = _place_search(query)
    missing = not found and query.strip()
    return query, found, f"Find a place: no place called {query.strip()[:60]!r} is known." if missing else ""


@bp.get("/devices/<uuid>/location")
def device_location_search(uuid):
    query, found, error = _place_query()
    return _device_page(uuid, error=error, places_found=found, query=query, invalid="q" if error else "")


def _chosen_place() -> dict:
    """The search result the owner picked (searched again: the page never trusts a
    location object sent by the browser)."""
    found = _place_search(request.form.get("q", ""))
    try:
        return found[int(request.form.get("index", ""))]
    except (ValueError, IndexError):
        raise BadRequest("that place is no longer in the search results; search again") from None


@bp.post("/devices/<uuid>/location")
def device_location_save(uuid):
    location = _chosen_place()
    devices.set_location(get_store(), uuid, location)
    flash(f"Location set to {location['address']}.", "info")
    return _back("web.device_page", uuid=uuid)


@bp.route("/devices/<uuid>/unpair", methods=["GET", "POST"])
def device_unpair(uuid):
    device = devices.get(get_store(), uuid)
    if request.method == "GET":
        return render_template("web/unpair.html", device=device)
    pairing.unpair(get_store(), uuid)
    flash(f"{device['name']} is unpaired. It must pair again to use this backend.", "info")
    return _back("web.device_list")


# skill settings ----------------------------------------------------------------------------

@bp.get("/skills")
def skills():
    store = get_store()
    per_device = [(d, skill_settings.device_list(store, d["uuid"])) for d in devices.list_all(store)]
    return render_template("web/skills.html", shared=skill_settings.shared_list(store),
                           per_device=per_device)


def _skill_page(record: dict, device: Optional[dict], status: int = 200, refused=None,
                form=None):
    """The settings form; after a refusal, with what was typed and the wrong field marked."""
    settings = record.get("settings", {})
    if form is not None:
        settings = forms.typed_settings(record.get("meta"), form, settings)
    own = device is not None and record["skill_id"] in device.get("skills", {})
    return render_template("web/skill.html", record=record, device=device, own=own,
                           error=refused.message if refused else "",
                           invalid=getattr(refused, "field", ""), clear_field=forms.CLEAR_FIELD,
                           sections=forms.settings_form(record.get("meta"), settings)), status


def _device_skill(uuid: str, skill_id: str) -> Tuple[dict, dict]:
    store = get_store()
    return devices.get(store, uuid), skill_settings.device_get(store, uuid, skill_id)


@bp.get("/skills/shared/<path:skill_id>")
def shared_skill(skill_id):
    return _skill_page(skill_settings.shared_get(get_store(), skill_id), None)


@bp.post("/skills/shared/<path:skill_id>")
def shared_skill_save(skill_id):
    store = get_store()
    record = skill_settings.shared_get(store, skill_id)
    try:
        values = forms.settings_from_form(record["meta"], request.form, record["settings"])
    except BadRequest as e:
        return _skill_page(record, None, 400, e, request.form)
    skill_settings.shared_put(store, skill_id, settings=values)
    flash("Saved. Devices that share these settings get them at their next sync.", "info")
    return _back("web.shared_skill", skill_id=skill_id)


@bp.get("/skills/device/<uuid>/<path:skill_id>")
def device_skill(uuid, skill_id):
    device, record = _device_skill(uuid, skill_id)
    return _skill_page(record, device)


@bp.post("/skills/device/<uuid>/<path:skill_id>")
def device_skill_save(uuid, skill_id):
    store = get_store()
    device, record = _device_skill(uuid, skill_id)
    if request.form.get("action") == "reset":
        skill_settings.device_delete(store, uuid, skill_id)
        flash("This device uses the shared settings again.", "info")
        return _back("web.device_skill", uuid=uuid, skill_id=skill_id)
    try:
        values = forms.settings_from_form(record["meta"], request.form, record["settings"])
    except BadRequest as e:
        return _skill_page(record, device, 400, e, request.form)
    skill_settings.device_put(store, uuid, skill_id, settings=values)
    flash(f"Saved for {device['name']}. It gets them at its next sync.", "info")
    return _back("web.device_skill", uuid=uuid, skill_id=skill_id)


# recordings -------------------------------------------------------------------------------

def _kind(kind: str) -> str:
    if kind not in RECORDING_KINDS:
        abort(404)
    return kind


@bp.get("/recordings")
def recordings():
    kind = _kind(request.args.get("kind", datasets.UTTERANCES))
    store = get_store()
    uuid = request.args.get("device") or None
    found = datasets.list_all(store, kind, uuid)[::-1]  # newest first
    page = max(1, request.args.get("page", 1, type=int) or 1)
    shown = found[(page - 1) * PAGE_SIZE:page * PAGE_SIZE]
    names = {d["uuid"]: d["name"] for d in devices.list_all(store)}
    return render_template("web/recordings.html", kind=kind, kinds=RECORDING_KINDS, records=shown,
                           total=len(found), page=page, pages=max(1, -(-len(found) // PAGE_SIZE)),
                           names=names, device=uuid, audio_tags=AUDIO_TAGS, speaker_tags=SPEAKER_TAGS,
                           switch=get_config()["listener"][datasets.SWITCHES[kind]])


@bp.get("/recordings/<kind>/<rec_id>/audio")
def recording_audio(kind, rec_id):
    audio, mime = datasets.read_audio(get_store(), _kind(kind), rec_id)
    return Response(audio, mimetype=mime)


@bp.post("/recordings/<kind>/<rec_id>")
def recording_save(kind, rec_id):
    fields = {k: request.form[k] for k in ("transcription", "audio_tag", "speaker_tag") if k in request.form}
    datasets.update(get_store(), _kind(kind), rec_id, fields)
    flash("Recording saved.", "info")
    return redirect(url_for("web.recordings", kind=kind, device=request.form.get("device") or None,
                            page=request.form.get("page") or None) + f"#rec-{rec_id}")


@bp.post("/recordings/<kind>/<rec_id>/delete")
def recording_delete(kind, rec_id):
    datasets.delete(get_store(), _kind(kind), rec_id)
    flash("Recording deleted.", "info")
    return _back("web.recordings", kind=kind, device=request.form.get("device") or None)


# metrics --------------------------------------------------------------------------------------

def _day(key: str, end: bool = False) -> Optional[float]:
    """The YYYY-MM-DD filter `key` as a timestamp (start of the day, or its end)."""
    value = request.args.get(key, "")
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        label = "From" if key == "since" else "To"
        raise forms.FieldError(f"{label}: {value[:20]!r} is not a date (YYYY-MM-DD)", key) from None
    return day.timestamp() + (86399.999 if end else 0)


@bp.get("/metrics")
def metrics_page():
    store, args = get_store(), request.args
    error = invalid = ""
    try:
        since, until = _day("since"), _day("until", end=True)
    except forms.FieldError as e:
        since = until = None
        error, invalid = e.message, e.field
    found = metrics.search(store, uuid=args.get("device") or None,
                           metric_type=args.get("type") or None, since=since, until=until)
    every = metrics.search(store)
    return render_template(
        "web/metrics.html", metrics=sorted(found, key=lambda m: -m.get("timestamp", 0))[:METRICS_SHOWN],
        total=len(found),
        chart=charts.activity([m.get("timestamp", 0) for m in found], since, until),
        types=sorted({m.get("metric_type", "") for m in every}),
        names={d["uuid"]: d["name"] for d in devices.list_all(store)},
        filters=args, error=error, invalid=invalid), 400 if error else 200


# configuration ----------------------------------------------------------------------------

def _config_page(status: int = 200, error: str = "", form=None, places_found=None, query: str = "",
                 invalid: str = ""):
    config = get_config()
    values = {f.key: forms.config_value(config, f) for _, fields in forms.CONFIG_SECTIONS for f in fields}
    if form is not None:  # show what was typed when it was refused (never secrets)
        values.update({f.key: (f.key in form) if f.kind == "checkbox" else form.get(f.key, "")
                       for _, fields in forms.CONFIG_SECTIONS for f in fields if f.kind != "secret"})
    return render_template("web/config.html", sections=forms.CONFIG_SECTIONS, values=values,
                           error=error, invalid=invalid, path=_config_path(), clear_field=forms.CLEAR_FIELD,
                           cleared=form.getlist(forms.CLEAR_FIELD) if form is not None else [],
                           place=devices.describe_location(config["location"]),
                           places=places_found, query=query, stt=get_service("stt").status(config["lang"])), status


@bp.get("/config")
def config_page():
    return _config_page()


@bp.post("/config")
def config_save():
    try:
        result = reconfigure.update(get_config(), _config_path(), forms.config_delta(request.form))
    except BadRequest as e:
        refused = forms.labelled(e, forms.CONFIG_LABELS)
        return _config_page(400, refused.message, request.form, invalid=refused.field)
    if not result["changed"]:
        flash("Nothing changed.", "info")
    elif result["restart_required"]:
        flash("Saved. Restart the backend to apply: " + ", ".join(result["restart_required"]) + ".",
              "info")
    else:
        flash("Saved and applied.", "info")
    return _back("web.config_page")


@bp.post("/backup")
def backup_download():
    """The whole store as one archive (backup.py): a POST, so it carries the CSRF token
    like every form here, since the archive holds secrets; never cached."""
    archive = io.BytesIO()
    backup.write(get_store(), _config_path(), archive)
    return Response(archive.getvalue(), mimetype="application/gzip", headers={
        "Content-Disposition": f'attachment; filename="{backup.default_name()}"',
        "Cache-Control": "no-store"})


@bp.get("/config/location")
def config_location_search():
    query, found, error = _place_query()
    return _config_page(error=error, places_found=found, query=query, invalid="q" if error else "")


@bp.post("/config/location")
def config_location_save():
    location = _chosen_place()
    reconfigure.update(get_config(), _config_path(), {"location": location})
    flash("Default location saved: new devices start there.", "info")
    return _back("web.config_page")
