"""Admin API for what devices contributed (api-contract §7.2, §7.3): utterance and
wake-word recordings (`voice_recs`, `ww_recs`) and metrics.

Lists carry no audio (they stay small whatever the dataset size): one recording's GET
has `audio_b64`, and `/<rec_id>/audio` serves the file itself for the web page.
Create routes exist with and without a device uuid, and with PUT as well as POST,
because ovos-backend-client and the old server never agreed on them (§7.3 gaps 1, 3).

Lists come in pages (`?page=1&per_page=100`, at most MAX_PER_PAGE rows): the body stays
the bare JSON array the client's `db_list_*` calls read, the total is in `X-Total-Count`
and the next page in a `Link` header. Unbounded, one device's metrics made a 1.4 GiB answer.
"""
from typing import Callable, List
from urllib.parse import urlencode

from flask import Blueprint, Response, jsonify, request

from .. import datasets, devices, metrics
from ..errors import BadRequest
from . import admin_required, get_store, json_body

bp = Blueprint("admin_records", __name__, url_prefix="/admin")
bp.before_request(admin_required(lambda: None))

# URL name -> dataset kind
RECORDINGS = {"voice_recs": datasets.UTTERANCES, "ww_recs": datasets.WAKEWORDS}


def _body_uuid(body) -> str:
    """The optional device of an admin create body; it must exist."""
    uuid = body.get("uuid") if isinstance(body, dict) else None
    if uuid in (None, ""):
        return ""
    if not isinstance(uuid, str):
        raise BadRequest("uuid must be a string")
    return devices.get(get_store(), uuid)["uuid"]


# pages ------------------------------------------------------------------------------------

DEFAULT_PER_PAGE = 100
MAX_PER_PAGE = 500


def _int_arg(name: str, default: int, highest: int) -> int:
    value = request.args.get(name) or str(default)
    if not value.isdigit() or not 1 <= int(value) <= highest:
        raise BadRequest(f"{name} must be a whole number from 1 to {highest}")
    return int(value)


def paginated(rows: List[dict], view: Callable[[dict], dict]) -> Response:
    """One page of `rows` (oldest first), each shown through `view` (only the page's rows
    are turned into views), with `X-Total-Count` and a `Link` to the next page."""
    per_page = _int_arg("per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE)
    page = _int_arg("page", 1, 10 ** 9)
    start = (page - 1) * per_page
    response = jsonify([view(row) for row in rows[start:start + per_page]])
    response.headers["X-Total-Count"] = str(len(rows))
    if start + per_page < len(rows):
        args = {**request.args.to_dict(), "page": str(page + 1), "per_page": str(per_page)}
        response.headers["Link"] = f'<{request.base_url}?{urlencode(args)}>; rel="next"'
    return response


# recordings: one view per action serves both kinds, `kind` comes from the route --------

def list_recordings(kind):
    """Filter (query): uuid; paged."""
    store = get_store()
    return paginated(datasets.list_all(store, kind, request.args.get("uuid")),
                     lambda record: datasets.admin_view(store, kind, record))


def get_recording(kind, rec_id):
    store = get_store()
    return jsonify(datasets.admin_view(store, kind, datasets.get(store, kind, rec_id),
                                       with_audio=True))


def recording_audio(kind, rec_id):
    audio, mime = datasets.read_audio(get_store(), kind, rec_id)
    return Response(audio, mimetype=mime, headers={
        "Content-Disposition": f'inline; filename="{rec_id}.{mime.split("/")[1]}"'})


def create_recording(kind, uuid=None):
    """With the device in the path (the old server) or optionally in the body (the
    client's `db_post_*_recording` sends none)."""
    store, body = get_store(), json_body()
    uuid = devices.get(store, uuid)["uuid"] if uuid is not None else _body_uuid(body)
    return jsonify(datasets.admin_view(store, kind, datasets.create(store, kind, body, uuid)))


def update_recording(kind, rec_id):
    store = get_store()
    return jsonify(datasets.admin_view(store, kind,
                                       datasets.update(store, kind, rec_id, json_body())))


def delete_recording(kind, rec_id):
    datasets.delete(get_store(), kind, rec_id)
    return jsonify({"success": True, "recording_id": rec_id})


for _name, _kind in RECORDINGS.items():
    # static first segments, so no recording route can shadow `/admin/<uuid>/...`
    for _rule, _view, _methods in (
            ("/list", list_recordings, ["GET"]),
            ("/<rec_id>", get_recording, ["GET"]),
            ("/<rec_id>/audio", recording_audio, ["GET"]),
            ("", create_recording, ["POST", "PUT"]),
            ("/<uuid>", create_recording, ["POST"]),
            ("/<rec_id>", update_recording, ["PUT"]),
            ("/<rec_id>", delete_recording, ["DELETE"])):
        bp.add_url_rule(f"/{_name}{_rule}", f"{_view.__name__}_{_name}", _view,
                        methods=_methods, defaults={"kind": _kind})


# metrics ------------------------------------------------------------------------------

def _time_arg(name: str):
    value = request.args.get(name)
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise BadRequest(f"{name} must be a Unix time in seconds") from None


@bp.get("/metrics/list")
def list_metrics():
    """Filters (query): uuid, metric_type, since, until (Unix seconds, inclusive); paged."""
    return paginated(metrics.find(get_store(), uuid=request.args.get("uuid"),
                                  metric_type=request.args.get("metric_type"),
                                  since=_time_arg("since"), until=_time_arg("until")),
                     metrics.admin_view)


@bp.get("/metrics/<metric_id>")
def get_metric(metric_id):
    return jsonify(metrics.get(get_store(), metric_id))


@bp.route("/metrics", methods=["POST", "PUT"])
def create_metric():
    """`db_post_metric` sends PUT with no uuid (§7.3 gap 1)."""
    body = json_body()
    return jsonify(metrics.create(get_store(), body, _body_uuid(body)))


@bp.post("/metrics/<uuid>")
def create_device_metric(uuid):
    store = get_store()
    devices.get(store, uuid)
    return jsonify(metrics.create(store, json_body(), uuid))


@bp.put("/metrics/<metric_id>")
def update_metric(metric_id):
    return jsonify(metrics.update(get_store(), metric_id, json_body()))


@bp.delete("/metrics/<metric_id>")
def delete_metric(metric_id):
    metrics.delete(get_store(), metric_id)
    return jsonify({"success": True, "metric_id": metric_id})
