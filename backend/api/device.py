"""Device routes (api-contract §3-§5): what a paired device reads and reports."""
from flask import Blueprint, jsonify, request

from .. import devices, metrics, skill_settings
from ..errors import BadRequest
from . import device_required, get_store, json_body

bp = Blueprint("device", __name__, url_prefix="/device/<uuid>")


@bp.get("")
@device_required
def info(uuid):
    return jsonify(devices.wire_info(devices.peek(get_store(), uuid)))


@bp.patch("")
@device_required
def report_version(uuid):
    devices.record_version(get_store(), uuid, json_body())
    return jsonify({"success": True, "uuid": uuid})


@bp.get("/setting")
@device_required
def setting(uuid):
    return jsonify(devices.wire_settings(devices.peek(get_store(), uuid)))


@bp.get("/location")
@device_required
def location(uuid):
    return jsonify(devices.peek(get_store(), uuid)["location"])


@bp.get("/subscription")
@device_required
def subscription(uuid):
    return jsonify({"@type": "free"})


@bp.get("/voice")
@device_required
def voice(uuid):
    arch = request.args.get("arch", "")
    if not arch:
        raise BadRequest("the arch parameter is required (x86_64 or arm)")
    # no premium voices here: an empty link tells the device to keep its own
    return jsonify({"link": "", "arch": arch[:32]})


@bp.put("/skillJson")
@device_required
def skills_manifest(uuid):
    devices.record_manifest(get_store(), uuid, json_body())
    return jsonify({"success": True, "uuid": uuid})


@bp.post("/metric/<path:name>")
@device_required
def metric(uuid, name):
    store = get_store()
    return jsonify(metrics.record(store, devices.peek(store, uuid), name, json_body()))


@bp.get("/skill")
@device_required
def skills_v1(uuid):
    store = get_store()
    return jsonify(skill_settings.v1_list(store, devices.peek(store, uuid)))


@bp.put("/skill")
@device_required
def upload_skill_v1(uuid):
    skill_settings.upload(get_store(), uuid, json_body())
    return jsonify({"success": True, "uuid": uuid})


@bp.get("/skill/settings")
@device_required
def skills_v2(uuid):
    store = get_store()
    return jsonify(skill_settings.v2_map(store, devices.peek(store, uuid)))


@bp.put("/settingsMeta")
@device_required
def upload_settings_meta(uuid):
    skill_settings.upload_meta(get_store(), uuid, json_body())
    return jsonify({"success": True, "uuid": uuid})
