"""Fleet benchmark: pair N devices, replay the polling mix a fleet produces, print figures.

    python bench/fleet.py --url http://127.0.0.1:6712 --devices 10 --concurrency 8 --seconds 10
    python bench/fleet.py --url URL_A --compare URL_B ...     # same mix on both, plus ratios

Prints one JSON line per server (requests/s, p50/p95/p99 in ms, errors) and, with --compare,
a line of ratios A/B. Standard library and requests only, so it runs against any backend that
speaks the device protocol (this one, or the old ovos-local-backend for comparison).
Machines are noisy: compare servers within one run, not across runs.
"""
import argparse
import json
import queue
import random
import statistics
import threading
import time
import uuid as uuidlib
from typing import Callable, Dict, List, Optional

import requests

# share of each request kind in a fleet's traffic (OVOS devices poll skill settings every minute)
MIX = {
    "skill_settings_get": 30, "metric_post": 15, "setting_get": 12, "location_get": 10,
    "device_get": 10, "settings_meta_put": 10, "skill_put": 5, "token_get": 5,
    "subscription_get": 3,
}
SKILL = "ovos-skill-bench.openvoiceos"
META = {"sections": [{"name": "Bench", "fields": [
    {"name": "volume", "type": "number", "label": "Volume", "value": "5"},
    {"name": "enabled", "type": "checkbox", "label": "Enabled", "value": "true"}]}]}


class Device:
    """One paired device: its id and current tokens (rotated by the token request)."""

    def __init__(self, login: dict):
        self.uuid = login["uuid"]
        self.access = login["accessToken"]
        self.refresh = login.get("refreshToken", self.access)

    def headers(self, token: Optional[str] = None) -> dict:
        return {"Authorization": f"Bearer {token or self.access}", "Device": self.uuid,
                "Content-Type": "application/json"}


def pair(session: requests.Session, api: str) -> Device:
    state = str(uuidlib.uuid4())
    code = session.get(f"{api}/device/code", params={"state": state}, timeout=10).json()
    login = session.post(f"{api}/device/activate", timeout=10, json={
        "state": state, "token": code["token"], "coreVersion": "bench", "platform": "bench",
        "platform_build": "bench", "enclosureVersion": "bench"}).json()
    return Device(login)


def request(session: requests.Session, api: str, kind: str, device: Device) -> requests.Response:
    base = f"{api}/device/{device.uuid}"
    if kind == "skill_settings_get":
        return session.get(f"{base}/skill", headers=device.headers())
    if kind == "metric_post":
        return session.post(f"{base}/metric/timing", headers=device.headers(),
                            json={"start_time": time.time(), "time": 0.1, "handler": "bench"})
    if kind == "setting_get":
        return session.get(f"{base}/setting", headers=device.headers())
    if kind == "location_get":
        return session.get(f"{base}/location", headers=device.headers())
    if kind == "device_get":
        return session.get(base, headers=device.headers())
    if kind == "settings_meta_put":
        return session.put(f"{base}/settingsMeta", headers=device.headers(), json={
            "skill_gid": f"@{device.uuid}|{SKILL}", "display_name": "Bench", "skillMetadata": META})
    if kind == "skill_put":
        return session.put(f"{base}/skill", headers=device.headers(), json={
            "skill_gid": f"@{device.uuid}|{SKILL}", "display_name": "Bench", "skillMetadata": META})
    if kind == "token_get":
        response = session.get(f"{api}/auth/token", headers=device.headers(device.refresh))
        if response.ok:
            rotated = Device(response.json())
            device.access, device.refresh = rotated.access, rotated.refresh
        return response
    if kind == "subscription_get":
        return session.get(f"{base}/subscription", headers=device.headers())
    raise ValueError(kind)


def percentile(values: List[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def run(url: str, devices: int, concurrency: int, seconds: float, version: str = "v1",
        seed: int = 1) -> Dict:
    """Pair `devices`, then replay the mix from `concurrency` threads for `seconds`."""
    api = f"{url.rstrip('/')}/{version}"
    with requests.Session() as session:
        fleet = [pair(session, api) for _ in range(devices)]
    # a device is used by one thread at a time, as a real device polls sequentially
    idle: "queue.Queue[Device]" = queue.Queue()
    for device in fleet:
        idle.put(device)
    kinds = random.Random(seed).choices(list(MIX), weights=list(MIX.values()), k=100_000)
    latencies: List[float] = []
    errors: Dict[str, int] = {}
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds
    counter = iter(range(10 ** 9))

    def worker() -> None:
        own_latencies, own_errors = [], {}
        with requests.Session() as session:
            while time.perf_counter() < deadline:
                kind = kinds[next(counter) % len(kinds)]
                device = idle.get()
                try:
                    start = time.perf_counter()
                    status = request(session, api, kind, device).status_code
                    own_latencies.append(time.perf_counter() - start)
                except requests.RequestException as e:
                    status = type(e).__name__
                finally:
                    idle.put(device)
                if status != 200:
                    key = f"{kind}:{status}"
                    own_errors[key] = own_errors.get(key, 0) + 1
        with lock:
            latencies.extend(own_latencies)
            for key, count in own_errors.items():
                errors[key] = errors.get(key, 0) + count

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    ms = [v * 1000 for v in latencies]
    return {"url": url, "devices": devices, "concurrency": concurrency,
            "seconds": round(elapsed, 2), "requests": len(ms),
            "rps": round(len(ms) / elapsed, 1),
            "p50_ms": round(statistics.median(ms), 2) if ms else 0.0,
            "p95_ms": round(percentile(ms, 95), 2), "p99_ms": round(percentile(ms, 99), 2),
            "errors": errors}


def ratios(a: Dict, b: Dict) -> Dict:
    def ratio(x: float, y: float) -> Optional[float]:
        return round(x / y, 2) if y else None
    return {"compare": f"{a['url']} / {b['url']}", "rps_ratio": ratio(a["rps"], b["rps"]),
            "p50_ratio": ratio(a["p50_ms"], b["p50_ms"]),
            "p99_ratio": ratio(a["p99_ms"], b["p99_ms"])}


def main(argv: Optional[List[str]] = None,
         emit: Callable[[str], None] = print) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:6712")
    parser.add_argument("--compare", help="a second backend URL to run the same mix against")
    parser.add_argument("--version", default="v1")
    parser.add_argument("--devices", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args(argv)
    first = run(args.url, args.devices, args.concurrency, args.seconds, args.version)
    emit(json.dumps(first))
    if args.compare:
        second = run(args.compare, args.devices, args.concurrency, args.seconds, args.version)
        emit(json.dumps(second))
        emit(json.dumps(ratios(first, second)))


if __name__ == "__main__":
    main()
