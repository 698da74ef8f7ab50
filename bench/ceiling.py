"""The backend against the framework's ceiling: the device-poll mix, side by side in one run.

    python bench/ceiling.py [--rounds 5] [--seconds 4] [--setups 10x8,100x32]
    python bench/ceiling.py --each-kind         # each request kind of the mix alone
    python bench/ceiling.py --bare --port 0     # only serve the bare app (what the bench starts)

The ceiling is a bare Flask app with the routes of the mix (bench/fleet.py), answering from
memory (a dict of devices and tokens, nothing checked, nothing written), served by the
backend's own server class (`BackendServer`: waitress, same threads, same connection
handling): what any Flask backend on this server could at best serve on this machine. One
process cannot beat it; the backend's share of it is what its own code costs.

Both servers run as standalone processes (the backend: the `ovos-personal-backend` command
of this Python's environment, in bench/scale.py's sandbox). For each setup (devices x
concurrency), the two take turns `--rounds` times, the order rotating each round, so a load
change on a shared machine hits both. Prints one JSON line per server and setup (requests/s
and p99 ms: min/median/max over rounds; server CPU ms per request from /proc) and one line of
ratios backend/ceiling per setup, each round's own ratio included. Linux only (/proc).
"""
import argparse
import json
import os
import secrets
import shutil
import statistics
import sys
import uuid as uuidlib
from typing import Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fleet  # noqa: E402
import scale  # noqa: E402  (its sandbox: HOME and XDG_* point there before OVOS imports)
from sync_poll import cpu_seconds, spread  # noqa: E402

TARGETS = {"rps_ratio": 0.80, "p99_ratio": 1.5}


def bare_app(version: str = "v1"):
    """A Flask app with the device-poll mix's routes, answering from memory."""
    from flask import Flask, jsonify, request

    app = Flask("ceiling")
    devices: Dict[str, dict] = {}  # uuid -> {"tokens": (access, refresh), "skills": {gid: entry}}
    tokens: Dict[str, str] = {}  # token -> uuid
    prefix = f"/{version}"

    def login(uuid: str) -> dict:
        access, refresh = secrets.token_hex(24), secrets.token_hex(24)
        for old in devices.get(uuid, {}).get("tokens", ()):
            tokens.pop(old, None)
        devices.setdefault(uuid, {"skills": {}})["tokens"] = (access, refresh)
        tokens[access] = tokens[refresh] = uuid
        return {"uuid": uuid, "accessToken": access, "refreshToken": refresh, "expiration": 3600}

    def device_of(uuid: Optional[str] = None) -> Optional[str]:
        token = request.headers.get("Authorization", "")[len("Bearer "):]
        owner = tokens.get(token)
        return owner if owner and (uuid is None or owner == uuid) else None

    @app.get(prefix + "/device/code")
    def code():
        return jsonify({"code": secrets.token_hex(3).upper(), "token": secrets.token_hex(16),
                        "expiration": 86400, "state": request.args.get("state")})

    @app.post(prefix + "/device/activate")
    def activate():
        request.get_json()
        return jsonify(login(str(uuidlib.uuid4())))

    @app.get(prefix + "/auth/token")
    def token():
        uuid = device_of()
        return jsonify(login(uuid)) if uuid else ("not paired", 401)

    @app.get(prefix + "/device/<uuid>")
    def info(uuid):
        if not device_of(uuid):
            return "not paired", 401
        return jsonify({"uuid": uuid, "name": "bench", "description": "", "coreVersion": "bench",
                        "enclosureVersion": "bench", "platform": "bench", "user": {"uuid": uuid}})

    @app.get(prefix + "/device/<uuid>/setting")
    def setting(uuid):
        if not device_of(uuid):
            return "not paired", 401
        return jsonify({"uuid": uuid, "dateFormat": "MDY", "timeFormat": "half",
                        "systemUnit": "metric", "optIn": False, "lang": "en-us", "location": {},
                        "listenerSetting": {}, "hotwordsSetting": {}, "ttsSettings": {}})

    @app.get(prefix + "/device/<uuid>/location")
    def location(uuid):
        if not device_of(uuid):
            return "not paired", 401
        return jsonify({"city": {"name": "Lawrence"}, "timezone": {"code": "America/Chicago"}})

    @app.get(prefix + "/device/<uuid>/subscription")
    def subscription(uuid):
        return jsonify({"@type": "free"}) if device_of(uuid) else ("not paired", 401)

    @app.get(prefix + "/device/<uuid>/skill")
    def skills(uuid):
        if not device_of(uuid):
            return "not paired", 401
        return jsonify(list(devices[uuid]["skills"].values()))

    @app.put(prefix + "/device/<uuid>/skill")
    @app.put(prefix + "/device/<uuid>/settingsMeta")
    def skill_put(uuid):
        if not device_of(uuid):
            return "not paired", 401
        body = request.get_json()
        devices[uuid]["skills"][body["skill_gid"]] = {
            "uuid": body["skill_gid"], "skill_gid": body["skill_gid"],
            "display_name": body.get("display_name"), "skillMetadata": body["skillMetadata"]}
        return jsonify({"success": True, "uuid": uuid})

    @app.post(prefix + "/device/<uuid>/metric/<name>")
    def metric(uuid, name):
        if not device_of(uuid):
            return "not paired", 401
        data = request.get_json()
        return jsonify({"success": True, "uuid": uuid, "metric": data, "saved": False,
                        "upload_data": {"uploaded": False}})

    @app.get("/")
    def index():
        return jsonify({"name": "ceiling", "api": prefix, "status": "ok"})

    return app


def serve_bare(port: int) -> None:
    """Serve the bare app with the backend's server class until SIGTERM."""
    import signal
    import threading

    from ovos_skill_personal_backend.backend.server import BackendServer

    server = BackendServer(bare_app(), "127.0.0.1", port).start()
    print(f"ceiling serving on {server.url}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop()


def measure(setups: List[tuple], rounds: int, seconds: float, processes: int,
            mix: Optional[Dict[str, int]] = None) -> List[dict]:
    """Every setup's rounds, both servers taking turns; the lines to print. `mix`: the
    request kinds and their shares (default: the fleet's mix)."""
    commands = {"backend": [scale.COMMAND],
                "ceiling": [sys.executable, os.path.abspath(__file__), "--bare"]}
    lines = []
    for devices, concurrency in setups:
        servers = {name: scale.Server(command, f"ceiling-{name}-{devices}")
                   for name, command in commands.items()}
        raws: Dict[str, List[dict]] = {name: [] for name in servers}
        cpu: Dict[str, List[float]] = {name: [] for name in servers}
        try:
            fleets = {}
            for name, server in servers.items():
                server.start()
                fleets[name] = fleet.pair_fleet(server.url, devices, threads=4)
                client = fleet.Client(server.url)  # each device has the skill: polls read it
                for device in fleets[name]:
                    fleet.request(client, "skill_put", device)
                client.close()
            order = list(servers)
            for number in range(rounds):
                for name in order[number % 2:] + order[:number % 2]:
                    pid = servers[name].process.pid
                    before = cpu_seconds(pid)
                    raw = fleet.load(servers[name].url, fleets[name], concurrency, seconds,
                                     processes=processes, seed=number + 1, mix=mix)
                    raws[name].append(raw)
                    cpu[name].append(1000 * (cpu_seconds(pid) - before) / max(1, len(raw["latencies"])))
        finally:
            scale._stop_all(servers.values())
        per_round = {name: [summary(server_raw) for server_raw in raws[name]] for name in servers}
        for name in servers:
            pooled = fleet.summarise(servers[name].url, devices, concurrency, raws[name])
            lines.append({"server": name, "devices": devices, "concurrency": concurrency,
                          "rounds": rounds, "requests": pooled["requests"], "errors": pooled["errors"],
                          "rps [min, median, max]": spread([r["rps"] for r in per_round[name]]),
                          "p99_ms [min, median, max]": spread([r["p99"] for r in per_round[name]]),
                          "p50_ms [min, median, max]": spread([r["p50"] for r in per_round[name]]),
                          "cpu_ms_per_request [min, median, max]": spread(cpu[name])})
        rps = [b["rps"] / c["rps"] for b, c in zip(per_round["backend"], per_round["ceiling"], strict=True)]
        p99 = [b["p99"] / c["p99"] for b, c in zip(per_round["backend"], per_round["ceiling"], strict=True)]
        cpu_ratio = [b / c for b, c in zip(cpu["backend"], cpu["ceiling"], strict=True)]
        lines.append({"ratio": "backend / ceiling", "devices": devices, "concurrency": concurrency,
                      "rps [min, median, max]": spread(rps), "p99 [min, median, max]": spread(p99),
                      "cpu_per_request [min, median, max]": spread(cpu_ratio),
                      "target": {"rps_ratio >=": TARGETS["rps_ratio"],
                                 **({"p99_ratio <=": TARGETS["p99_ratio"]} if concurrency >= 32 else {})},
                      "met": statistics.median(rps) >= TARGETS["rps_ratio"] and (
                          concurrency < 32 or statistics.median(p99) <= TARGETS["p99_ratio"])})
    return lines


def summary(raw: dict) -> dict:
    """One round's requests/s and latency percentiles (ms)."""
    ms = [v * 1000 for v in raw["latencies"]]
    return {"rps": len(ms) / raw["seconds"] if raw["seconds"] > 0 else 0.0,
            "p50": statistics.median(ms) if ms else 0.0, "p99": fleet.percentile(ms, 99)}


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bare", action="store_true", help="only serve the bare app")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--data-dir", help="ignored (the bare app keeps nothing)")
    parser.add_argument("--setups", default="10x8,100x32", help="devices x concurrency, ...")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4, help="measured seconds per round")
    parser.add_argument("--processes", type=int, default=2, help="load generator processes")
    parser.add_argument("--each-kind", action="store_true",
                        help="instead of the mix, each request kind of it alone (what each costs)")
    args = parser.parse_args(argv)
    if args.bare:
        serve_bare(args.port)
        return
    setups = [tuple(int(n) for n in setup.split("x")) for setup in args.setups.split(",")]
    mixes = {kind: {kind: 1} for kind in fleet.MIX} if args.each_kind else {"fleet mix": None}
    try:
        for name, mix in mixes.items():
            for line in measure(setups, args.rounds, args.seconds, args.processes, mix):
                print(json.dumps({"mix": name, **line}), flush=True)
    finally:
        shutil.rmtree(scale.SANDBOX, ignore_errors=True)


if __name__ == "__main__":
    main()
