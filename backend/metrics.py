"""Metrics devices report (intent timings, STT, TTS...), kept for opted-in devices only.

Stored in an append-only log: a write costs the same however many metrics exist, and
appends of different devices share their syncs (none waits for another's). The admin's
rare edits and deletes rewrite the log through `AppendLog.edit`, which holds appends back
so none can slip in between the edit's read and its rewrite and be lost.

A device's metrics are bounded by its quotas (count, bytes: further ones are refused
with a 429) and by retention (older than quotas.metrics_days: deleted, checked at most
hourly when metrics arrive): an opted-in device wrote 707 MiB in 30 s before.
"""
import json
import threading
import time
import uuid as uuidlib
import weakref
from typing import Dict, List, Optional

from ovos_utils.log import LOG

from . import quotas
from .errors import BadRequest, NotFound
from .store import AppendLog, Store

NAME_LIMIT = 100
BODY_LIMIT = 64 * 1024
# seconds between two retention passes (quotas.metrics_days) over the log
PRUNE_INTERVAL = 3600

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


class Usage:
    """What each device's metrics take in the log ({uuid: [count, bytes]}), counted once
    from the log, then kept up to date by appends: checking a device's quota costs no
    read. Rebuilt after every rewrite (admin edits, retention)."""

    def __init__(self, metrics: List[dict]):
        self.per_device: Dict[str, List[int]] = {}
        self.pruned_at = float("-inf")  # time.monotonic() of the last retention pass
        for metric in metrics:
            self.add(metric)

    def add(self, metric: dict, times: int = 1) -> None:
        """Count `metric` (`times=-1`: take it back, when its append failed)."""
        used = self.per_device.setdefault(str(metric.get("uuid", "")), [0, 0])
        used[0] += times
        used[1] += times * _line_size(metric)


# the usage of each store's log, made on first use (weak: a dropped store takes it along)
_usage: "weakref.WeakKeyDictionary[AppendLog, Usage]" = weakref.WeakKeyDictionary()


def _line_size(metric: dict) -> int:
    """Bytes the metric's line takes in the log."""
    return len(json.dumps(metric, ensure_ascii=False, sort_keys=True).encode("utf-8")) + 1


def _usage_of(store: Store) -> Usage:
    """The store's Usage; the caller holds `_lock`."""
    usage = _usage.get(store.metrics)
    if usage is None:
        usage = _usage[store.metrics] = Usage(store.metrics.read())
    return usage


def _prune(store: Store, limits: Dict[str, int]) -> None:
    """Delete the metrics older than quotas.metrics_days, at most once per PRUNE_INTERVAL
    (a pass reads and may rewrite the whole log, whose size the quotas bound). The caller
    holds `_lock`."""
    usage = _usage_of(store)
    if time.monotonic() - usage.pruned_at < PRUNE_INTERVAL:
        return
    oldest = time.time() - limits["metrics_days"] * quotas.DAY
    pruned = []

    def keep_recent(metrics: List[dict]) -> Optional[List[dict]]:
        kept = [m for m in metrics if not isinstance(m.get("timestamp"), (int, float))
                or m["timestamp"] >= oldest]
        if len(kept) == len(metrics):
            return None
        pruned[:] = [len(metrics) - len(kept), kept]
        return kept

    store.metrics.edit(keep_recent)
    if pruned:
        LOG.info(f"deleted {pruned[0]} metrics older than {limits['metrics_days']} days "
                 "(quotas.metrics_days)")
        usage = _usage[store.metrics] = Usage(pruned[1])
    usage.pruned_at = time.monotonic()


def _check_quota(usage: Usage, uuid: str, size: int, limits: Dict[str, int]) -> None:
    """429 when the device's metrics would pass its count or size quota."""
    count, used = usage.per_device.get(uuid, (0, 0))
    if count >= limits["metrics_per_device"]:
        raise quotas.full("metrics", "metrics_per_device", limits["metrics_per_device"])
    if used + size > limits["metrics_mb_per_device"] * 1024 * 1024:
        raise quotas.full("metrics", "metrics_mb_per_device", limits["metrics_mb_per_device"], " MB")


def _new(uuid: str, name: str, data: dict) -> dict:
    return {"metric_id": uuidlib.uuid4().hex, "metric_type": name, "uuid": uuid,
            "timestamp": time.time(), "meta": data}


def _append(store: Store, metric: dict, limits: Optional[Dict[str, int]] = None) -> dict:
    """Append `metric`, within the device's `limits` when given (the owner's own, None,
    are not limited); old metrics are deleted first, per the retention quota."""
    with _lock:  # quotas checked and counted together; the append (a sync) outside
        usage = _usage_of(store)
        if limits is not None:
            _prune(store, limits)
            usage = _usage_of(store)
            _check_quota(usage, metric["uuid"], _line_size(metric), limits)
        usage.add(metric)
    try:
        store.metrics.append(metric)
    except Exception:
        with _lock:
            usage.add(metric, times=-1)
        raise
    return metric


def restore(store: Store, metrics: List[dict]) -> None:
    """Keep metrics made elsewhere (the import of an old backend) as they are, in one
    write: the owner brings them, so no device quota applies."""
    if not metrics:
        return
    with _lock:
        store.metrics.extend(metrics)
        _usage.pop(store.metrics, None)  # counted again on the next append


def record(store: Store, device: dict, name: str, data,
           limits: Dict[str, int] = quotas.DEFAULT_QUOTAS) -> dict:
    """POST /metric/{name}: store when the device opted in, within its quotas; reply as
    the old backend did."""
    _check_name(name)
    _check_data(data)
    stored = None
    if device.get("opt_in"):
        stored = _append(store, _new(device["uuid"], name, data), limits)
    return {"success": True, "uuid": device["uuid"], "metric": data,
            "saved": stored is not None, "upload_data": {"uploaded": False}}


def create(store: Store, body, uuid: str = "") -> dict:
    """Admin upload `{metric_type, metadata}`, for a device or (uuid "") for none."""
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object")
    data = body.get("metadata", body.get("meta"))
    return admin_view(_append(store, _new(uuid, _check_name(body.get("metric_type")),
                                          _check_data({} if data is None else data))))


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
    result = []

    def apply(metrics: List[dict]) -> List[dict]:
        position = next((i for i, metric in enumerate(metrics)
                         if metric.get("metric_id") == metric_id), None)
        if position is None:
            raise NotFound(f"unknown metric: {metric_id[:64]}")
        changed = change(dict(metrics[position]))
        if changed is None:
            del metrics[position]
        else:
            metrics[position] = changed
        result.append(changed)
        return metrics

    with _lock:
        store.metrics.edit(apply)
        _usage.pop(store.metrics, None)  # counted again on the next append
    return result[0]


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
    """Metrics matching every filter given, oldest first, as admin views."""
    return [admin_view(metric) for metric in find(store, uuid, metric_type, since, until)]


def find(store: Store, uuid: Optional[str] = None, metric_type: Optional[str] = None,
         since: Optional[float] = None, until: Optional[float] = None) -> List[dict]:
    """Metrics matching every filter given, oldest first, as stored."""
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
        found.append(metric)
    return found
