"""Metrics: devices report them (`metrics_upload`), the owner reads and edits them through
the real client's admin calls (`db_list_metrics`, `db_get_metric`, `db_post_metric`,
`db_update_metric`, `db_delete_metric`) and the routes the old server had (§7.2, §7.3 gap 1).
"""
import threading
import time

import pytest
import requests

from helpers import admin_backend, admin_headers, pair, restore_identity  # noqa: F401
from ovos_skill_personal_backend.backend import metrics

pytestmark = pytest.mark.usefixtures("restore_identity")

INTENT = {"intent_type": "weather", "start_time": 1700000000.5, "time": 0.21}
STT = {"transcription": "what is the weather", "stt": "pocketsphinx", "start_time": 1.0,
       "time": 0.4}


@pytest.fixture
def device(live_server, tmp_path):
    device = pair(live_server.url, tmp_path / "device.json")
    assert admin_backend(live_server.url).admin_set_device_info(
        device.uuid, {"opt_in": True}).status_code == 200
    return device


@pytest.fixture
def admin(live_server):
    return admin_backend(live_server.url)


def test_device_metrics_reach_the_admin_list(device, admin):
    for name, body in (("intent_service", INTENT), ("stt", STT)):
        answer = device.metrics_upload(name, body)
        assert answer.status_code == 200
        assert answer.json() == {"success": True, "uuid": device.uuid, "metric": body,
                                 "saved": True, "upload_data": {"uploaded": False}}
    rows = admin.db_list_metrics()
    assert [(r["metric_type"], r["uuid"], r["meta"]) for r in rows] == [
        ("intent_service", device.uuid, INTENT), ("stt", device.uuid, STT)]
    for row in rows:
        # the manager reads `meta`, the old rows had `metadata_json`
        assert metrics.json.loads(row["metadata_json"]) == row["meta"]
        assert len(row["metric_id"]) == 32 and row["metric_id"].isalnum()
        assert isinstance(row["timestamp"], float)
    assert admin.db_get_metric(rows[1]["metric_id"]) == rows[1]


def test_not_opted_in_devices_are_not_recorded(live_server, tmp_path, admin):
    device = pair(live_server.url, tmp_path / "other.json")
    assert device.metrics_upload("intent_service", INTENT).json()["saved"] is False
    assert admin.db_list_metrics() == []


def test_list_filters(device, admin, live_server):
    device.metrics_upload("intent_service", INTENT)
    middle = time.time()
    time.sleep(0.01)
    device.metrics_upload("stt", STT)
    admin.db_post_metric("tts", {"utterance": "hi", "tts": "mimic"})
    url = f"{live_server.url}/v1/admin/metrics/list"

    def listed(**params):
        response = requests.get(url, params=params, headers=admin_headers(), timeout=10)
        assert response.status_code == 200, response.text
        return [r["metric_type"] for r in response.json()]

    assert listed() == ["intent_service", "stt", "tts"]
    assert listed(uuid=device.uuid) == ["intent_service", "stt"]
    assert listed(metric_type="stt") == ["stt"]
    assert listed(since=middle) == ["stt", "tts"]
    assert listed(until=middle) == ["intent_service"]
    assert listed(uuid=device.uuid, since=middle) == ["stt"]
    bad = requests.get(url, params={"since": "yesterday"}, headers=admin_headers(), timeout=10)
    assert bad.status_code == 400 and "since" in bad.json()["error"]


def test_post_update_delete_with_the_client(device, admin):
    # the client PUTs to /admin/metrics without a uuid (the old server 404ed: gap 1)
    created = admin.db_post_metric("fallback_handler", {"handler": "fallback", "skill_id": "x"})
    assert created["metric_type"] == "fallback_handler" and created["uuid"] == ""
    assert created["meta"] == {"handler": "fallback", "skill_id": "x"}
    metric_id = created["metric_id"]

    updated = admin.db_update_metric(metric_id, {"handler": "fallback", "skill_id": "y"})
    assert updated["meta"] == {"handler": "fallback", "skill_id": "y"}
    assert updated["timestamp"] == created["timestamp"]
    assert admin.db_get_metric(metric_id)["meta"]["skill_id"] == "y"

    assert admin.db_delete_metric(metric_id) == {"success": True, "metric_id": metric_id}
    # "not found" is a real 404 with a JSON error (the client hands the body back)
    assert admin.db_get_metric(metric_id) == {"error": f"unknown metric: {metric_id}"}
    assert admin.db_delete_metric(metric_id) == {"error": f"unknown metric: {metric_id}"}
    assert admin.db_update_metric(metric_id, {}) == {"error": f"unknown metric: {metric_id}"}


def test_old_server_routes_and_bad_input(device, live_server):
    base = f"{live_server.url}/v1/admin/metrics"
    # POST /metrics/{uuid}: the old server's create route, for a device
    made = requests.post(f"{base}/{device.uuid}", headers=admin_headers(), timeout=10,
                         json={"metric_type": "speech", "metadata": {"utterance": "hi"}})
    assert made.status_code == 200 and made.json()["uuid"] == device.uuid
    # POST without uuid, uuid in the body
    made = requests.post(base, headers=admin_headers(), timeout=10,
                         json={"metric_type": "speech", "meta": {}, "uuid": device.uuid})
    assert made.status_code == 200 and made.json()["uuid"] == device.uuid

    unknown = requests.post(f"{base}/no-such-device", headers=admin_headers(), timeout=10,
                            json={"metric_type": "speech", "metadata": {}})
    assert unknown.status_code == 404
    for body in ({"metadata": {}}, {"metric_type": "x" * 101}, {"metric_type": "x", "metadata": []},
                 {"metric_type": "x", "uuid": 5}, ["not", "an", "object"]):
        bad = requests.put(base, json=body, headers=admin_headers(), timeout=10)
        assert bad.status_code == 400 and bad.json()["error"], body
    wrong_key = requests.get(f"{base}/list", headers=admin_headers("x" * 20), timeout=10)
    assert wrong_key.status_code == 401


def test_edits_never_lose_concurrent_appends(store):
    """An admin edit rewrites the log; appends racing with it must all survive."""
    device = {"uuid": "dev", "opt_in": True}
    first = metrics.record(store, device, "intent_service", {"n": -1})
    assert first["saved"]
    metric_id = metrics.search(store)[0]["metric_id"]

    def report(worker):
        for n in range(25):
            metrics.record(store, device, "intent_service", {"worker": worker, "n": n})

    threads = [threading.Thread(target=report, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    for n in range(25):
        metrics.update(store, metric_id, {"metadata": {"n": n}})
    for thread in threads:
        thread.join()
    stored = metrics.search(store)
    assert len(stored) == 1 + 3 * 25
    assert stored[0]["meta"] == {"n": 24}
