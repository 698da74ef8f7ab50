"""Metrics devices report (intent timings, STT, TTS...), kept for opted-in devices only.

Stored in an append-only log: a write costs the same however many metrics exist.
The admin's rare edits and deletes rewrite the log; one lock covers appends and
rewrites so an append cannot slip in between an edit's read and its rewrite and be lost.
"""
import json
import threading
import time
import uuid as uuidlib
from typing import List, Optional

from .errors import BadRequest, NotFound
from .store import Store

NAME_LIMIT = 100
BODY_LIMIT = 64 * 1024

_lock = threading.Lock()


def _check_name(name) -> str:
    if not isinstance(name, str) or not name or len(name) > NAME_LIMIT:
        raise BadRequest(f"metric name must be 1 to {NAME_LIMIT} characters")
    return name


def _check_data(data) -> dict:
    if not isinstance(data, dict):
        raise BadRequest("metric data must be a JSON object")
    if len(json.dumps(data)) > BODY_LIMIT:
        raise BadRequest("metric data is too large")
    return data


def _append(store: Store, uuid: str, name: str, data: dict) -> dict:
    metric = {"metric_id": uuidlib.uuid4().hex, "metric_type": name, "uuid": uuid,
              "timestamp": time.time(), "meta": data}
    with _lock:
        return store.metrics.append(metric)


def record(store: Store, device: dict, name: str, data) -> dict:
    """POST /metric/{name}: store when the device opted in; reply as the old backend did."""
    _check_name(name)
    _check_data(data)
    stored = None
    if device.get("opt_in"):
        stored = _append(store, device["uuid"], name, data)
    return {"success": True, "uuid": device["uuid"], "metric": data,
            "saved": stored is not None, "upload_data": {"uploaded": False}}


def create(store: Store, body, uuid: str = "") -> dict:
    """Admin upload `{metric_type, metadata}`, for a device or (uuid "") for none."""
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object")
    data = body.get("metadata", body.get("meta"))
    return admin_view(_append(store, uuid, _check_name(body.get("metric_type")),
                              _check_data({} if data is None else data)))


def admin_view(metric: dict) -> dict:
    """Row format of the admin client, with the manager UI's `meta` alias."""
    return {**metric, "metadata_json": json.dumps(metric.get("meta", {}))}


def get(store: Store, metric_id: str) -> dict:
    for metric in store.metrics.read():
        if metric.get("metric_id") == metric_id:
            return admin_view(metric)
    raise NotFound(f"unknown metric: {metric_id[:64]}")


def _rewrite(store: Store, metric_id: str, change) -> Optional[dict]:
    """Apply `change(metric) -> metric or None (delete)` to one metric and rewrite the log."""
    with _lock:
        metrics = store.metrics.read()
        position = next((i for i, metric in enumerate(metrics)
                         if metric.get("metric_id") == metric_id), None)
        if position is None:
            raise NotFound(f"unknown metric: {metric_id[:64]}")
        changed = change(dict(metrics[position]))
        if changed is None:
            del metrics[position]
        else:
            metrics[position] = changed
        store.metrics.rewrite(metrics)
        return changed


def update(store: Store, metric_id: str, body) -> dict:
    """Admin edit: `{metadata}` replaces the data, `metric_type` renames; None keeps."""
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object")
    changes = {}
    if body.get("metric_type") is not None:
        changes["metric_type"] = _check_name(body["metric_type"])
    data = body.get("metadata", body.get("meta"))
    if data is not None:
        changes["meta"] = _check_data(data)
    return admin_view(_rewrite(store, metric_id, lambda metric: {**metric, **changes}))


def delete(store: Store, metric_id: str) -> None:
    _rewrite(store, metric_id, lambda metric: None)


def search(store: Store, uuid: Optional[str] = None, metric_type: Optional[str] = None,
           since: Optional[float] = None, until: Optional[float] = None) -> List[dict]:
    """Metrics matching every filter given, oldest first."""
    found = []
    for metric in store.metrics.read():
        if uuid and metric.get("uuid") != uuid:
            continue
        if metric_type and metric.get("metric_type") != metric_type:
            continue
        if since is not None and metric.get("timestamp", 0) < since:
            continue
        if until is not None and metric.get("timestamp", 0) > until:
            continue
        found.append(admin_view(metric))
    return found
