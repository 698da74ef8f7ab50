"""Admin API (api-contract §7): pairings, devices, skill settings, wake-word and voice
definitions, backend config.

Every route needs `Authorization: Bearer <server.admin_key>`. Errors are JSON with a
real status (404 for an unknown id, never the old backend's 200 `{"error": ...}`).
"""
import json

from flask import Blueprint, Response, current_app, jsonify

from .. import definitions, devices, pairing, reconfigure, skill_settings
from ..definitions import VOICE, WAKE_WORD
from ..errors import BadRequest
from . import admin_required, get_config, get_store, json_body

bp = Blueprint("admin", __name__, url_prefix="/admin")
bp.before_request(admin_required(lambda: None))

MIN_TOKEN_LENGTH = 16


# pairings ---------------------------------------------------------------------------

@bp.get("/pairings")
def pending_pairings():
    return jsonify(pairing.pending(get_store()))


@bp.post("/pairings/<code>/approve")
def approve_pairing(code):
    return jsonify(pairing.approve(get_store(), code))


@bp.post("/pairings/<code>/deny")
def deny_pairing(code):
    return jsonify(pairing.deny(get_store(), code))


@bp.post("/pairings/<code>/undeny")
def undeny_pairing(code):
    return jsonify(pairing.undeny(get_store(), code))


@bp.get("/<uuid>/pair")
def pair(uuid):
    """Create or re-key a device and hand back its identity (the client saves it)."""
    return jsonify(pairing.pair_directly(get_store(), get_config(), uuid))


# device info, location and preferences (§7.1) ----------------------------------------

INFO_FIELDS = ("opt_in", "name", "device_location", "email", "isolated_skills", "lang")
PREF_FIELDS = ("time_format", "date_format", "system_unit", "lang", "wake_word", "ww_config",
               "tts_module", "tts_config")


def _device_row(device: dict) -> Response:
    return jsonify(devices.admin_view(get_store(), device))


def _pick(body, allowed) -> dict:
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object")
    unknown = set(body) - set(allowed)
    if unknown:
        raise BadRequest(f"unknown fields: {sorted(map(str, unknown))[:5]}")
    return {k: v for k, v in body.items() if v is not None}


@bp.put("/<uuid>/device")
def set_device_info(uuid):
    changes = _pick(json_body(), INFO_FIELDS)
    return _device_row(devices.update(get_store(), uuid, changes))


@bp.put("/<uuid>/location")
def set_device_location(uuid):
    return _device_row(devices.set_location(get_store(), uuid, json_body()))


@bp.put("/<uuid>/prefs")
def set_device_prefs(uuid):
    body = json_body()
    if isinstance(body, dict) and "ww_module" in body:
        # the client's documented example puts the module inside ww_config; accept both
        body = dict(body)
        module, ww_config = body.pop("ww_module"), body.get("ww_config") or {}
        if not isinstance(module, str) or not isinstance(ww_config, dict):
            raise BadRequest("ww_module must be a string and ww_config an object")
        body["ww_config"] = {**ww_config, "module": module}
    changes = _pick(body, PREF_FIELDS)
    return _device_row(devices.update(get_store(), uuid, changes))


# device CRUD (§7.2) ------------------------------------------------------------------

DEVICE_FIELDS = ("name", "device_location", "email", "opt_in", "isolated_skills", "lang",
                 "date_format", "time_format", "system_unit", "location", "ww_id", "voice_id")


@bp.get("/devices/list")
def list_devices():
    store = get_store()
    return jsonify([devices.admin_view(store, d) for d in devices.list_all(store)])


@bp.get("/devices/<uuid>")
def get_device(uuid):
    return _device_row(devices.get(get_store(), uuid))


@bp.post("/devices")
def create_device():
    """Create a device (or update it when the uuid exists), optionally with a chosen token."""
    body = json_body()
    if not isinstance(body, dict) or not isinstance(body.get("uuid"), str):
        raise BadRequest("uuid is required")
    token = body.get("token") or ""
    if not isinstance(token, str) or (token and len(token) < MIN_TOKEN_LENGTH):
        raise BadRequest(f"token must be at least {MIN_TOKEN_LENGTH} characters")
    _pick(body, DEVICE_FIELDS + ("uuid", "token"))  # refuses unknown fields
    store, uuid = get_store(), body["uuid"]
    changes = devices.validate_changes(definitions.device_changes(
        store, {k: v for k, v in body.items() if k in DEVICE_FIELDS and v is not None}))

    def apply(device):
        device = device or devices.new_device(get_config(), uuid)
        device.update(changes)
        if token:
            device["tokens"] = {"access": pairing.hash_token(token)}
        return device

    return _device_row(store.devices.update(uuid, apply))


@bp.put("/devices/<uuid>")
def update_device(uuid):
    changes = _pick(json_body(), DEVICE_FIELDS + ("uuid", "token"))
    changes.pop("uuid", None)
    changes.pop("token", None)  # tokens change through pairing, never by echoing a row back
    store = get_store()
    changes = definitions.device_changes(store, changes)
    return _device_row(devices.update(store, uuid, changes))


@bp.delete("/devices/<uuid>")
def delete_device(uuid):
    pairing.unpair(get_store(), uuid)
    return jsonify({"success": True, "uuid": uuid})


# skill settings (§7.2) -----------------------------------------------------------------

def _settings_body(body) -> dict:
    """display_name, settings and meta from a body; JSON-encoded strings are accepted too."""
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object")
    parsed = {}
    for key, name in (("settings_json", "settings"), ("metadata_json", "meta")):
        value = body.get(key, body.get(name))
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise BadRequest(f"{key} is not valid JSON") from None
        parsed[name] = value
    parsed["display_name"] = body.get("display_name")
    return parsed


@bp.get("/skill_settings/list")
def list_shared_settings():
    return jsonify(skill_settings.shared_list(get_store()))


@bp.get("/skill_settings/<path:skill_id>")
def get_shared_settings(skill_id):
    return jsonify(skill_settings.shared_get(get_store(), skill_id))


@bp.post("/skill_settings")
def create_shared_settings():
    body = json_body()
    skill_id = body.get("skill_id") if isinstance(body, dict) else None
    return jsonify(skill_settings.shared_put(get_store(), skill_id, **_settings_body(body)))


@bp.put("/skill_settings/<path:skill_id>")
def update_shared_settings(skill_id):
    return jsonify(skill_settings.shared_put(get_store(), skill_id, **_settings_body(json_body())))


@bp.delete("/skill_settings/<path:skill_id>")
def delete_shared_settings(skill_id):
    skill_settings.shared_delete(get_store(), skill_id)
    return jsonify({"success": True, "skill_id": skill_id})


@bp.get("/<uuid>/skill_settings/list")
def list_device_settings(uuid):
    return jsonify(skill_settings.device_list(get_store(), uuid))


@bp.get("/<uuid>/skill_settings/<path:skill_id>")
def get_device_settings(uuid, skill_id):
    return jsonify(skill_settings.device_get(get_store(), uuid, skill_id))


@bp.post("/<uuid>/skill_settings")
def create_device_settings(uuid):
    body = json_body()
    skill_id = body.get("skill_id") if isinstance(body, dict) else None
    return jsonify(skill_settings.device_put(get_store(), uuid, skill_id, **_settings_body(body)))


@bp.put("/<uuid>/skill_settings/<path:skill_id>")
def update_device_settings(uuid, skill_id):
    return jsonify(skill_settings.device_put(get_store(), uuid, skill_id,
                                             **_settings_body(json_body())))


@bp.delete("/<uuid>/skill_settings/<path:skill_id>")
def delete_device_settings(uuid, skill_id):
    skill_settings.device_delete(get_store(), uuid, skill_id)
    return jsonify({"success": True, "uuid": uuid, "skill_id": skill_id})


# backend configuration ---------------------------------------------------------------

@bp.get("/config")
def get_backend_config():
    return jsonify(reconfigure.shown(get_config()))


@bp.post("/config")
def update_backend_config():
    """`{"config": {...partial}}`: validated, saved to the config file, applied at once
    where the running server allows it; the answer names the keys that wait for a restart."""
    body = json_body()
    delta = body.get("config") if isinstance(body, dict) else None
    path = current_app.extensions["personal_backend"]["config_path"]
    return jsonify(reconfigure.update(get_config(), path, delta))


# wake-word and voice definitions (§7.2) ------------------------------------------------

def _definition_routes(kind: definitions.Kind, path: str) -> None:
    """list, get, create, upsert and delete for one catalogue under /admin/<path>."""
    name = kind.collection

    def list_definitions():
        return jsonify(definitions.list_all(get_store(), kind))

    def get_definition(key):
        return jsonify(definitions.get(get_store(), kind, key))

    def create_definition():
        return jsonify(definitions.create(get_store(), get_config(), kind, json_body()))

    def put_definition(key):
        return jsonify(definitions.put(get_store(), get_config(), kind, key, json_body()))

    def delete_definition(key):
        definitions.delete(get_store(), kind, key)
        return jsonify({"success": True, kind.id_key: key})

    bp.add_url_rule(f"/{path}/list", f"list_{name}", list_definitions, methods=["GET"])
    bp.add_url_rule(f"/{path}/<path:key>", f"get_{name}", get_definition, methods=["GET"])
    bp.add_url_rule(f"/{path}", f"create_{name}", create_definition, methods=["POST"])
    bp.add_url_rule(f"/{path}/<path:key>", f"put_{name}", put_definition, methods=["PUT"])
    bp.add_url_rule(f"/{path}/<path:key>", f"delete_{name}", delete_definition, methods=["DELETE"])


_definition_routes(WAKE_WORD, "ww_defs")
_definition_routes(VOICE, "voice_defs")
