"""Fleet benchmark: pair N devices, replay the polling mix a fleet produces, print figures.

    python bench/fleet.py --url http://127.0.0.1:6712 --devices 10 --concurrency 8 --seconds 10
    python bench/fleet.py --url URL_A --compare URL_B ...     # same mix on both, plus ratios

Prints one JSON line per server (requests/s, p50/p95/p99 in ms, errors) and, with --compare,
a line of ratios A/B. Standard library only (http.client: a fraction of the CPU `requests`
needs per call, so the load generator, which shares the machine with the server, takes less
from it), so it runs against any backend that speaks the device protocol (this one, or the
old ovos-local-backend for comparison: see bench/old_backend.sh).

The load comes from `--processes` processes of `--concurrency / --processes` threads each,
so one Python interpreter (one GIL) is not what limits the figures. Requests sent during the
first `--warmup` seconds are not counted. With `--rounds R` the two servers take turns R
times and each figure pools its rounds, so a load change on a shared machine hits both.
Machines are noisy: compare servers within one run, not across runs.
"""
import argparse
import http.client
import json
import multiprocessing
import random
import statistics
import threading
import time
import uuid as uuidlib
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

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
TIMEOUT = 30


class Client:
    """One keep-alive HTTP connection to the backend (a device polls over one connection)."""

    def __init__(self, url: str, version: str = "v1"):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 80
        self.root = parts.path.rstrip("/")
        self.prefix = f"{self.root}/{version}"
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)

    def call(self, method: str, path: str, headers: Optional[dict] = None,
             body: Optional[dict] = None, versioned: bool = True) -> Tuple[int, bytes]:
        """(status, body) of one request to `path` under the API prefix (or the server's
        root when not `versioned`); a dropped connection is reopened once."""
        path = (self.prefix if versioned else self.root) + path
        payload = json.dumps(body).encode() if body is not None else None
        headers = dict(headers or {})
        if payload is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            try:
                self.connection.request(method, path, payload, headers)
                response = self.connection.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.connection.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.connection.close()


class Device:
    """One paired device: its id and current tokens (rotated by the token request)."""

    def __init__(self, login: dict):
        self.uuid = login["uuid"]
        self.access = login["accessToken"]
        self.refresh = login.get("refreshToken", self.access)

    def headers(self, token: Optional[str] = None) -> dict:
        return {"Authorization": f"Bearer {token or self.access}", "Device": self.uuid}


def pair(client: Client) -> Device:
    """Pair one device through the device protocol (code, then activation)."""
    state = str(uuidlib.uuid4())
    status, body = client.call("GET", f"/device/code?state={state}")
    if status != 200:
        raise RuntimeError(f"GET /device/code answered {status}: {body[:200]!r}")
    code = json.loads(body)
    status, body = client.call("POST", "/device/activate", body={
        "state": state, "token": code["token"], "coreVersion": "bench", "platform": "bench",
        "platform_build": "bench", "enclosureVersion": "bench"})
    if status != 200:
        raise RuntimeError(f"POST /device/activate answered {status}: {body[:200]!r}")
    return Device(json.loads(body))


def pair_fleet(url: str, devices: int, version: str = "v1", threads: int = 1) -> List[Device]:
    """Pair `devices` devices, `threads` at a time. One at a time by default: the old
    backend loses devices paired concurrently (its device file is rewritten unlocked)."""
    local = threading.local()

    def one(_):
        if not hasattr(local, "client"):
            local.client = Client(url, version)
        return pair(local.client)

    with ThreadPoolExecutor(max_workers=max(1, min(threads, devices))) as pool:
        return list(pool.map(one, range(devices)))


def request(client: Client, kind: str, device: Device) -> int:
    """Send one request of the mix as `device`; returns the HTTP status."""
    base = f"/device/{device.uuid}"
    gid = f"@{device.uuid}|{SKILL}"
    if kind == "skill_settings_get":
        return client.call("GET", f"{base}/skill", device.headers())[0]
    if kind == "metric_post":
        return client.call("POST", f"{base}/metric/timing", device.headers(),
                           {"start_time": time.time(), "time": 0.1, "handler": "bench"})[0]
    if kind == "setting_get":
        return client.call("GET", f"{base}/setting", device.headers())[0]
    if kind == "location_get":
        return client.call("GET", f"{base}/location", device.headers())[0]
    if kind == "device_get":
        return client.call("GET", base, device.headers())[0]
    if kind == "settings_meta_put":
        return client.call("PUT", f"{base}/settingsMeta", device.headers(), {
            "skill_gid": gid, "display_name": "Bench", "skillMetadata": META})[0]
    if kind == "skill_put":
        return client.call("PUT", f"{base}/skill", device.headers(), {
            "skill_gid": gid, "display_name": "Bench", "skillMetadata": META})[0]
    if kind == "token_get":
        status, body = client.call("GET", "/auth/token", device.headers(device.refresh))
        if status == 200:
            rotated = Device(json.loads(body))
            device.access, device.refresh = rotated.access, rotated.refresh
        return status
    if kind == "subscription_get":
        return client.call("GET", f"{base}/subscription", device.headers())[0]
    if kind == "index":  # not in the mix: the cheapest route, to see what the framework costs
        return client.call("GET", "/", versioned=False)[0]
    raise ValueError(kind)


def percentile(values: List[float], pct: float) -> float:
    """Nearest-rank percentile of `values` (0.0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def _drive(url: str, version: str, fleet: List[Device], threads: int, start_at: float,
           warmup: float, seconds: float, seed: int, mix: Dict[str, int]) -> dict:
    """One load process: `threads` threads share `fleet`, each device used by one thread
    at a time (a real device polls sequentially). Counts what starts in the measured window."""
    idle: List[Device] = list(fleet)
    available = threading.Condition()
    measure_from, deadline = start_at + warmup, start_at + warmup + seconds
    latencies: List[float] = []
    errors: Dict[str, int] = {}
    lock = threading.Lock()

    def take() -> Device:
        with available:
            while not idle:
                available.wait()
            return idle.pop()

    def give(device: Device) -> None:
        with available:
            idle.append(device)
            available.notify()

    def worker(number: int) -> None:
        kinds = random.Random(seed * 1000 + number)
        names, weights = list(mix), list(mix.values())
        client = Client(url, version)
        own_latencies, own_errors = [], {}
        time.sleep(max(0.0, start_at - time.time()))
        while True:
            started = time.time()
            if started >= deadline:
                break
            kind = kinds.choices(names, weights)[0]
            device = take()
            try:
                begin = time.perf_counter()
                status = request(client, kind, device)
                elapsed = time.perf_counter() - begin
            except (OSError, http.client.HTTPException) as e:
                status, elapsed = type(e).__name__, None
                client.close()
            finally:
                give(device)
            if started < measure_from:
                continue
            if elapsed is not None:
                own_latencies.append(elapsed)
            if status != 200:
                key = f"{kind}:{status}"
                own_errors[key] = own_errors.get(key, 0) + 1
        client.close()
        with lock:
            latencies.extend(own_latencies)
            for key, count in own_errors.items():
                errors[key] = errors.get(key, 0) + count

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    # tokens rotate (token_get): a child process hands the new ones back with its figures
    tokens = {device.uuid: (device.access, device.refresh) for device in fleet}
    return {"latencies": latencies, "errors": errors, "ended": time.time(), "tokens": tokens}


def _drive_in_child(connection, *args) -> None:
    connection.send(_drive(*args))
    connection.close()


def load(url: str, fleet: List[Device], concurrency: int, seconds: float,
         version: str = "v1", processes: int = 1, warmup: float = 1.0, seed: int = 1,
         mix: Optional[Dict[str, int]] = None) -> dict:
    """Replay `mix` (default: the fleet's) on a paired fleet; raw figures: latencies (s),
    errors, measured seconds."""
    mix = mix or MIX
    processes = max(1, min(processes, concurrency, len(fleet)))
    start_at = time.time() + 0.2 * processes  # every process starts together
    shares = [fleet[p::processes] for p in range(processes)]
    threads = [concurrency // processes + (p < concurrency % processes) for p in range(processes)]
    if processes == 1:
        results = [_drive(url, version, fleet, concurrency, start_at, warmup, seconds, seed, mix)]
    else:
        context = multiprocessing.get_context("fork")
        children, pipes = [], []
        for p in range(processes):
            receiver, sender = context.Pipe(duplex=False)
            child = context.Process(target=_drive_in_child, args=(
                sender, url, version, shares[p], threads[p], start_at, warmup, seconds, seed + p,
                mix))
            child.start()
            children.append(child)
            pipes.append(receiver)
        results = [pipe.recv() for pipe in pipes]
        for child in children:
            child.join()
        for device in fleet:
            for result in results:
                if device.uuid in result["tokens"]:
                    device.access, device.refresh = result["tokens"][device.uuid]
    latencies = [v for r in results for v in r["latencies"]]
    errors: Dict[str, int] = {}
    for result in results:
        for key, count in result["errors"].items():
            errors[key] = errors.get(key, 0) + count
    # the window closes when the last request begun in it has answered
    measured = max(r["ended"] for r in results) - (start_at + warmup)
    return {"latencies": latencies, "errors": errors, "seconds": measured}


def summarise(url: str, devices: int, concurrency: int, raws: List[dict]) -> Dict:
    """The JSON line of one server: its rounds pooled."""
    ms = [v * 1000 for raw in raws for v in raw["latencies"]]
    seconds = sum(raw["seconds"] for raw in raws)
    errors: Dict[str, int] = {}
    for raw in raws:
        for key, count in raw["errors"].items():
            errors[key] = errors.get(key, 0) + count
    return {"url": url, "devices": devices, "concurrency": concurrency,
            "seconds": round(seconds, 2), "requests": len(ms),
            "rps": round(len(ms) / seconds, 1) if seconds > 0 else 0.0,
            "p50_ms": round(statistics.median(ms), 2) if ms else 0.0,
            "p95_ms": round(percentile(ms, 95), 2), "p99_ms": round(percentile(ms, 99), 2),
            "errors": errors}


def run(url: str, devices: int, concurrency: int, seconds: float, version: str = "v1",
        processes: int = 1, warmup: float = 1.0, seed: int = 1) -> Dict:
    """Pair `devices`, replay the mix from `concurrency` connections for `seconds`, summarise."""
    fleet = pair_fleet(url, devices, version)
    raw = load(url, fleet, concurrency, seconds, version, processes, warmup, seed)
    return summarise(url, devices, concurrency, [raw])


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
    parser.add_argument("--seconds", type=float, default=10, help="measured seconds per round")
    parser.add_argument("--processes", type=int, default=2,
                        help="load generator processes (threads are split among them)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds not counted")
    parser.add_argument("--rounds", type=int, default=1,
                        help="with --compare: turns each server takes, alternating")
    args = parser.parse_args(argv)
    urls = [args.url] + ([args.compare] if args.compare else [])
    fleets = {url: pair_fleet(url, args.devices, args.version) for url in urls}
    raws: Dict[str, List[dict]] = {url: [] for url in urls}
    for round_number in range(max(1, args.rounds)):
        for url in urls:
            raws[url].append(load(url, fleets[url], args.concurrency, args.seconds, args.version,
                                  args.processes, args.warmup, seed=round_number + 1))
    lines = [summarise(url, args.devices, args.concurrency, raws[url]) for url in urls]
    for line in lines:
        emit(json.dumps(line))
    if args.compare:
        emit(json.dumps(ratios(*lines)))


if __name__ == "__main__":
    main()
