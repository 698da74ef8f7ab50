"""Device routes (api-contract §3-§5): what a paired device reads and reports.

What devices poll answers with an ETag, and a 304 when it has not changed
(`conditional_json`). `/skill/sync` is our extension of Selene's protocol: a device
reads every skill's values with their update time, and sends back the ones it changed.
"""
from flask import Blueprint, jsonify, request

from .. import devices, metrics, skill_settings
from ..errors import BadRequest
from . import conditional_json, current_device, device_required, get_config, get_store, json_body

bp = Blueprint("device", __name__, url_prefix="/device/<uuid>")


@bp.get("")
@device_required
def info(uuid):
    return conditional_json(devices.wire_info(current_device()))


@bp.patch("")
@device_required
def report_version(uuid):
    devices.record_version(get_store(), uuid, json_body())
    return jsonify({"success": True, "uuid": uuid})


@bp.get("/setting")
@device_required
def setting(uuid):
    return conditional_json(devices.wire_settings(current_device()))


@bp.get("/location")
@device_required
def location(uuid):
    return conditional_json(current_device()["location"])


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
    devices.record_manifest(get_store(), uuid, json_body(), get_config()["quotas"])
    return jsonify({"success": True, "uuid": uuid})


@bp.post("/metric/<path:name>")
@device_required
def metric(uuid, name):
    return jsonify(metrics.record(get_store(), current_device(), name, json_body(),
                                  get_config()["quotas"]))


def _settings_read(uuid: str, view):
    """`view(store, device record)` of a settings read, noted as the device's sync."""
    store = get_store()
    answer = view(store, current_device())
    store.presence.synced(uuid)
    return answer


@bp.get("/skill")
@device_required
def skills_v1(uuid):
    return conditional_json(_settings_read(uuid, skill_settings.v1_list))


@bp.put("/skill")
@device_required
def upload_skill_v1(uuid):
    store = get_store()
    skill_settings.upload(store, uuid, json_body(), get_config()["quotas"])
    store.presence.synced(uuid)
    return jsonify({"success": True, "uuid": uuid})


@bp.get("/skill/settings")
@device_required
def skills_v2(uuid):
    return conditional_json(_settings_read(uuid, skill_settings.v2_map))


@bp.get("/skill/sync")
@device_required
def skills_sync(uuid):
    return conditional_json(_settings_read(uuid, skill_settings.sync_view))


SYNC_FIELDS = {"skill_id", "gid", "settings"}


@bp.patch("/skill/sync")
@device_required
def push_skill_values(uuid):
    body = json_body()
    if not isinstance(body, dict) or not body.keys() <= SYNC_FIELDS:
        raise BadRequest('expected {"skill_id": str, "gid": str (optional), "settings": {name: value}}')
    store = get_store()
    answer = skill_settings.push_values(store, uuid, body.get("skill_id"), body.get("settings"),
                                        body.get("gid"), get_config()["quotas"])
    store.presence.synced(uuid)
    return jsonify(answer)


@bp.put("/settingsMeta")
@device_required
def upload_settings_meta(uuid):
    skill_settings.upload_meta(get_store(), uuid, json_body(), get_config()["quotas"])
    return jsonify({"success": True, "uuid": uuid})
