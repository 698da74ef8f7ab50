"""Issue 15, items 7, 8, 11 and 16: one paired device (hostile or broken) must not be able
to make the backend keep, compute or spend without bound.

Each test replays the attack through the real server (waitress on 127.0.0.1), with the
real ovos-backend-client where a client call exists, and small quotas set in the config
so that a flood fits in a test: what is bounded is the mechanism, not the number.
"""
import io
import json
import os
import time

import numpy as np
import pytest
import requests
import soundfile

from conftest import make_config
from helpers import admin_headers, data_files, database_api, serve
from ovos_skill_personal_backend.backend import create_app, datasets, devices, metrics
from ovos_skill_personal_backend.backend import store as store_module
from ovos_skill_personal_backend.backend.api import admin_records
from ovos_skill_personal_backend.backend.store import Store
from standins import StandIn, json_reply, paired_client, text_reply

SMALL = {"manifest_skills": 5, "skill_settings_kb": 2, "device_settings_kb": 6,
         "metrics_per_device": 5, "recordings_per_device": 3}


@pytest.fixture
def app(config, store):
    config["quotas"].update(SMALL)
    config["listener"].update(record_wakewords=True, record_utterances=True)
    return create_app(config, store)


@pytest.fixture
def device(store, config, live_server, tmp_path):
    """A paired, opted-in device driving the real client."""
    with paired_client(store, config, live_server, tmp_path) as client:
        devices.update(store, client.uuid, {"opt_in": True})
        yield client


@pytest.fixture
def other(store, config, live_server, tmp_path):
    """A second device of the same house, opted in too."""
    with paired_client(store, config, live_server, tmp_path) as client:
        devices.update(store, client.uuid, {"opt_in": True})
        yield client


def call(device, method: str, path: str, data: str = None, **kwargs) -> requests.Response:
    """A device request outside the client, to see statuses and bodies; `data` is JSON text."""
    headers = {"Authorization": f"Bearer {device.login['accessToken']}", "Content-Type": "application/json"}
    return requests.request(method, f"{device.backend_url}/v1/device/{device.uuid}/{path}",
                            headers=headers, data=data, timeout=30, **kwargs)


def refused(response: requests.Response, status: int, key: str) -> None:
    """A JSON refusal naming the config key of the limit."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/json")
    assert f"quotas.{key}" in response.json()["error"]


def manifest(count: int) -> dict:
    return {"skills": [{"name": f"skill-{n}.test", "skill_gid": f"skill-{n}.test|1"} for n in range(count)],
            "blacklist": []}


# item 7/8: manifests -------------------------------------------------------------------

def test_a_manifest_over_the_quota_is_refused(device, store):
    assert device.device_upload_skills_data(manifest(5)).status_code == 200
    refused(device.device_upload_skills_data(manifest(6)), 413, "manifest_skills")
    assert devices.installed_skills(store.devices.get(device.uuid)) == sorted(
        f"skill-{n}.test" for n in range(5))  # the last good manifest is kept


def test_a_manifest_of_200000_skills_is_refused_by_default(tmp_path):
    """The attack as measured: with the default quotas, 200,000 entries are refused
    before anything is stored; every settings read then cost 0.3-0.55 s of CPU."""
    config = make_config(tmp_path / "data")
    store = Store(config["data_path"])
    with serve(config, store) as server, paired_client(store, config, server, tmp_path) as client:
        compact = {"skills": [{"name": f"s{n}"} for n in range(200_000)], "blacklist": []}  # 4.4 MB
        response = client.device_upload_skills_data(compact)
    refused(response, 413, "manifest_skills")
    assert store.devices.get(client.uuid)["skills_manifest"] == {}


# item 7: skill settings sizes ----------------------------------------------------------

def settings_body(uuid: str, skill: str, value: str) -> dict:
    return {"skill_gid": f"@{uuid}|{skill}", "skillMetadata": {"sections": [
        {"name": "s", "fields": [{"name": "text", "type": "text", "value": value}]}]}}


def test_one_skills_settings_are_bounded(device, store):
    refused(call(device, "PUT", "skill", json=settings_body(device.uuid, "big.test", "x" * 3000)),
            413, "skill_settings_kb")
    refused(call(device, "PATCH", "skill/sync", json={"skill_id": "big.test", "settings": {"v": "x" * 3000}}),
            413, "skill_settings_kb")
    assert store.shared_skills.get("big.test") is None


def test_a_device_cannot_grow_the_shared_settings_file_without_bound(device, other, store):
    """One device made skill_settings.json 51 MiB with many skills of large settings."""
    path = os.path.join(store.path, "skill_settings.json")
    statuses = [call(device, "PUT", "skill", json=settings_body(device.uuid, f"s{n}.test", "x" * 1500)).status_code
                for n in range(8)]
    assert statuses[:3] == [200] * 3 and statuses[-1] == 413, statuses
    assert os.path.getsize(path) < 6 * 1024 + 2048  # the quota plus the file's indentation
    # the house is not locked out: another device still writes, an unchanged upload still passes
    assert call(other, "PUT", "skill", json=settings_body(other.uuid, "o.test", "y")).status_code == 200
    assert call(device, "PUT", "skill", json=settings_body(device.uuid, "s0.test", "x" * 1500)).status_code == 200


# item 7: metrics -------------------------------------------------------------------------

def test_metrics_are_bounded_per_device(device, other, store):
    answers = [device.device_report_metric("flood", {"n": n}) for n in range(7)]
    assert [a.status_code for a in answers] == [200] * 5 + [429] * 2
    refused(answers[-1], 429, "metrics_per_device")
    assert other.device_report_metric("fine", {}).json()["saved"] is True  # others unaffected
    kept = metrics.find(store, uuid=device.uuid)
    assert len(kept) == 5


def test_metrics_are_bounded_in_bytes(config, device, store):
    config["quotas"].update(metrics_per_device=1000, metrics_mb_per_device=1)
    statuses = [call(device, "POST", "metric/big", json={"blob": "z" * 60_000}).status_code for _ in range(20)]
    assert 200 in statuses and statuses[-1] == 429
    assert os.path.getsize(os.path.join(store.path, "metrics.jsonl")) <= 1024 * 1024


def test_old_metrics_are_deleted(config, device, store):
    old = time.time() - 91 * 86400
    for n in range(3):  # written before this version: nothing counted them yet
        store.metrics.append({"metric_id": f"old{n}", "metric_type": "t", "uuid": device.uuid,
                              "timestamp": old, "meta": {}})
    assert device.device_report_metric("fresh", {}).json()["saved"] is True
    assert [m["metric_type"] for m in metrics.find(store)] == ["fresh"]


# item 7: admin lists come in bounded pages ---------------------------------------------------

def test_admin_lists_are_paged(config, device, live_server, monkeypatch):
    config["quotas"]["metrics_per_device"] = 100
    for n in range(7):
        device.device_report_metric(f"m{n}", {"n": n})
    url = f"{live_server.url}/v1/admin/metrics/list"
    page = requests.get(url, params={"per_page": 3, "page": 2}, headers=admin_headers(), timeout=10)
    assert [m["metric_type"] for m in page.json()] == ["m3", "m4", "m5"]
    assert page.headers["X-Total-Count"] == "7" and 'rel="next"' in page.headers["Link"]
    last = requests.get(url, params={"per_page": 3, "page": 3}, headers=admin_headers(), timeout=10)
    assert [m["metric_type"] for m in last.json()] == ["m6"] and "Link" not in last.headers
    too_big = requests.get(url, params={"per_page": 10 ** 6}, headers=admin_headers(), timeout=10)
    assert too_big.status_code == 400 and "per_page" in too_big.json()["error"]
    # the client's call sends no page: it gets a bounded first page, still a bare list
    monkeypatch.setattr(admin_records, "DEFAULT_PER_PAGE", 4)
    rows = database_api(live_server.url).backend.db_list_metrics()
    assert [m["metric_type"] for m in rows] == ["m0", "m1", "m2", "m3"]


# item 7: recordings ----------------------------------------------------------------------------

def wav(seconds: float = 0.5, rate: int = 16000, channels: int = 1, fmt: str = "WAV") -> bytes:
    out = io.BytesIO()
    soundfile.write(out, np.zeros((int(seconds * rate), channels), dtype="int16"), rate, format=fmt)
    return out.getvalue()


WW = {"name": "hey_mycroft"}


@pytest.mark.parametrize("audio", [
    b"RIFF\x00\x00\x00\x00WAVE" + os.urandom(4096),  # the 12 bytes checked before, then anything
    wav(0.05, rate=192000, channels=8, fmt="FLAC"),  # the FLAC "bomb" of item 3
    wav(300, rate=8000),  # five minutes
], ids=["riff-garbage", "8ch-192khz-flac", "5-minutes"])
def test_recordings_must_be_real_audio(device, store, audio):
    answer = device.device_upload_wake_word_v1(audio, WW)
    assert answer.status_code == 400, answer.text
    assert datasets.list_all(store, datasets.WAKEWORDS) == []


def test_recordings_are_bounded_per_device(device, other, store):
    answers = [device.device_upload_wake_word_v1(wav(), WW) for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 3 + [429] * 2
    refused(answers[-1], 429, "recordings_per_device")
    assert other.device_upload_wake_word_v1(wav(), WW).json()["saved"] is True
    folder = os.path.join(store.path, "recordings", datasets.WAKEWORDS)
    assert len(os.listdir(folder)) == 4  # 3 of the device, 1 of the other
    # a deleted recording frees its place
    device_recs = [r for r in datasets.list_all(store, datasets.WAKEWORDS) if r["uuid"] == device.uuid]
    datasets.delete(store, datasets.WAKEWORDS, device_recs[0]["recording_id"])
    assert device.device_upload_wake_word_v1(wav(), WW).status_code == 200


def test_recordings_are_bounded_in_bytes(config, device, store):
    config["quotas"].update(recordings_per_device=1000, recordings_mb_per_device=1)
    statuses = [device.device_upload_wake_word_v1(wav(10), WW).status_code for _ in range(5)]  # 320 KB each
    assert statuses == [200] * 3 + [429] * 2


def test_old_recordings_are_deleted(device, store):
    first = device.device_upload_wake_word_v1(wav(), WW).json()["recording_id"]
    store.wakewords.update(first, lambda r: {**r, "timestamp": time.time() - 366 * 86400})
    datasets._usage.clear()  # as after a restart: the next upload counts and prunes
    assert device.device_upload_wake_word_v1(wav(), WW).status_code == 200
    assert first not in store.wakewords.keys()
    assert not os.path.exists(os.path.join(store.path, "recordings", datasets.WAKEWORDS, f"{first}.wav"))


# item 8: OAuth states ----------------------------------------------------------------------------

def test_an_authorization_writes_the_same_small_file_however_many_are_pending(device, live_server, store):
    device.db_post_oauth_app("spotify", "client-id", "secret", "http://127.0.0.1:9/authorize",
                             "http://127.0.0.1:9/token", None, "read")

    def largest_state_file() -> int:
        return max(os.path.getsize(f) for f in data_files(store.path) if "oauth_states" in f)

    sizes = []
    for _ in range(40):
        answer = requests.get(f"{live_server.url}/v1/auth/spotify/auth_url", timeout=10,
                              headers={"Authorization": f"Bearer {device.login['accessToken']}"})
        assert answer.status_code == 200
        sizes.append(largest_state_file())
    # was one file growing with every call; now one small file per state (a few bytes apart:
    # the numbers in a state differ in length)
    assert max(sizes) < 1024 and max(sizes) - min(sizes) <= 16, (min(sizes), max(sizes))


# item 11: upstream misses ----------------------------------------------------------------------------

def test_a_device_cannot_spend_the_owners_upstream_quota(config, store, tmp_path):
    with StandIn(lambda r: json_reply({"main": {"temp": 20}})) as owm, \
            StandIn(lambda r: text_reply("42")) as wolfram:
        config["microservices"].update(owm_key="k" * 16, owm_url=owm.url, wolfram_key="w" * 8,
                                       wolfram_url=wolfram.url, timeout=2.0)
        with serve(config, store) as server, paired_client(store, config, server, tmp_path) as device:
            def weather(lat):
                return requests.get(f"{server.url}/v1/owm/weather", params={"lat": lat, "lon": 1},
                                    headers={"Authorization": f"Bearer {device.login['accessToken']}"},
                                    timeout=10)
            assert all(weather(n).status_code == 200 for n in range(30))
            refused(weather(30), 429, "upstream_misses_per_hour")
            assert weather(0).status_code == 200  # a cached answer is always served
            spoken = requests.get(f"{server.url}/v1/wolframAlphaSpoken", params={"i": "2+2"},
                                  headers={"Authorization": f"Bearer {device.login['accessToken']}"},
                                  timeout=10)
            refused(spoken, 429, "upstream_misses_per_hour")  # one budget for both services
        assert len(owm.requests) == 30 and wolfram.requests == []


# item 16: non-finite numbers -------------------------------------------------------------------------

def strict_json(response: requests.Response):
    def refuse(constant):
        raise ValueError(f"bare {constant} is not JSON")
    return json.loads(response.text, parse_constant=refuse)


@pytest.mark.parametrize("value", ["nan", "1e999", "-inf"])
def test_number_settings_must_be_finite(device, value):
    body = {"skill_gid": f"@{device.uuid}|n.test", "skillMetadata": {"sections": [
        {"name": "s", "fields": [{"name": "level", "type": "number", "value": value}]}]}}
    answer = call(device, "PUT", "skill", json=body)
    assert answer.status_code == 400 and "finite" in answer.json()["error"]
    strict_json(call(device, "GET", "skill/settings"))


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "1e999"])
def test_non_finite_json_literals_are_refused(device, store, literal):
    body = '{"skill_id": "n.test", "settings": {"level": %s}}' % literal
    answer = call(device, "PATCH", "skill/sync", data=body)
    assert answer.status_code == 400 and "finite" in answer.json()["error"]
    assert store.shared_skills.get("n.test") is None
    strict_json(call(device, "GET", "skill/sync"))


def test_the_store_refuses_non_finite_numbers(store):
    with pytest.raises(Exception, match="finite"):
        store.shared_skills.put("x", {"v": [1.0, float("nan")]})
    assert store_module.check_storable({"fine": [1.5, 10 ** 30]}) is None
