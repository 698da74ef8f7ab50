"""Metrics devices report (intent timings, STT, TTS...), kept for opted-in devices only.

Stored in an append-only log: a write costs the same however many metrics exist.
"""
import json
import time
import uuid as uuidlib
from typing import List, Optional

from .errors import BadRequest
from .store import Store

NAME_LIMIT = 100
BODY_LIMIT = 64 * 1024


def record(store: Store, device: dict, name: str, data) -> dict:
    """POST /metric/{name}: store when the device opted in; reply as the old backend did."""
    if not isinstance(name, str) or not name or len(name) > NAME_LIMIT:
        raise BadRequest(f"metric name must be 1 to {NAME_LIMIT} characters")
    if not isinstance(data, dict):
        raise BadRequest("metric data must be a JSON object")
    if len(json.dumps(data)) > BODY_LIMIT:
        raise BadRequest("metric data is too large")
    stored = None
    if device.get("opt_in"):
        stored = store.metrics.append({
            "metric_id": uuidlib.uuid4().hex, "metric_type": name, "uuid": device["uuid"],
            "timestamp": time.time(), "meta": data})
    return {"success": True, "uuid": device["uuid"], "metric": data,
            "saved": stored is not None, "upload_data": {"uploaded": False}}


def admin_view(metric: dict) -> dict:
    """Row format of the admin client, with the manager UI's `meta` alias."""
    return {**metric, "metadata_json": json.dumps(metric.get("meta", {}))}


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
