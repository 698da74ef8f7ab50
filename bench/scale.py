"""Scale benchmark: start-up, memory, and how the backend holds up as data and fleets grow.

    python bench/scale.py                      # every measurement
    python bench/scale.py --only ready,rss     # some of them: ready rss metrics fleet p99
    python bench/scale.py --baseline "env PYTHONPATH=/tmp/old-checkout ovos-personal-backend"

Each measurement starts its own standalone servers (the `ovos-personal-backend` command of
the environment this Python runs in) on 127.0.0.1, on ports the system picks, each with its
own data folder in a temporary sandbox that HOME and every XDG_* variable point to; nothing
outside it is read or written. Prints one JSON line per measurement, with the target the
figure is held against. Where two setups are compared, they run side by side in one run
(taking turns), so a load change on a shared machine hits both: read the ratios.

* ready:   seconds from starting the command until `GET /` answers (median of --runs)
* rss:     resident memory of that process, idle after serving a few requests
* metrics: latency of a metric POST with --metrics metrics stored vs an empty store
* fleet:   requests/s of the fleet mix (bench/fleet.py) with 1,000 devices vs 10
* p99:     latency percentiles of the mix at concurrency 32 with 100 devices, and of
           `GET /` alone at the same concurrency (what the HTTP server and Flask cost)

With --baseline, every measurement is also made with a second command (another version of
the server, e.g. the last release), taking turns with the first; each line says which
command it is about.
"""
import argparse
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid as uuidlib
from typing import Callable, Dict, List, Optional

SANDBOX = tempfile.mkdtemp(prefix="pb-scale-")
ENVIRONMENT = dict(os.environ, HOME=SANDBOX)
for _var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME",
             "XDG_CONFIG_DIRS", "XDG_DATA_DIRS"):
    ENVIRONMENT[_var] = os.environ[_var] = os.path.join(SANDBOX, _var.lower())  # before OVOS imports
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fleet  # noqa: E402
from ovos_skill_personal_backend.backend import config as backend_config  # noqa: E402
from ovos_skill_personal_backend.backend import pairing  # noqa: E402
from ovos_skill_personal_backend.backend.store import Store  # noqa: E402

COMMAND = os.path.join(os.path.dirname(sys.executable), "ovos-personal-backend")
TARGETS = {"ready_s": 0.5, "rss_mb": 60, "metrics_ratio": 1.2, "fleet_ratio": 0.9, "p99_ms": 20}


class Server:
    """One server process (`command`) serving its own data folder on a free port."""

    def __init__(self, command: List[str], name: str):
        self.command = command
        self.data = os.path.join(SANDBOX, name)
        self.process: Optional[subprocess.Popen] = None
        self.url = ""

    def start(self) -> float:
        """Start the command; returns the seconds until `GET /` answered."""
        started = time.perf_counter()
        self.process = subprocess.Popen(
            self.command + ["--port", "0", "--data-dir", self.data], env=ENVIRONMENT,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = " "
        while line and " serving on " not in line:  # log lines may come first
            line = self.process.stdout.readline()  # "ovos-personal-backend serving on URL (...)"
        if not line:
            self.stop()
            raise RuntimeError(f"{shlex.join(self.command)} did not start")
        self.url = line.split(" serving on ", 1)[1].split()[0]
        while True:
            try:
                with urllib.request.urlopen(self.url + "/", timeout=5) as response:
                    response.read()
                return time.perf_counter() - started
            except OSError:
                time.sleep(0.002)

    def rss_mb(self) -> float:
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS line in /proc/<pid>/status")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def measure_start(commands: Dict[str, List[str]], runs: int) -> List[Dict]:
    """(a) ready time of the standalone command; (b) its idle memory after a few requests.
    With several commands, they take turns start after start."""
    ready: Dict[str, List[float]] = {name: [] for name in commands}
    rss: Dict[str, List[float]] = {name: [] for name in commands}
    for run in range(runs):
        for name, command in commands.items():
            server = Server(command, f"start-{name}-{run}")
            try:
                ready[name].append(server.start())
                fleet.run(server.url, devices=2, concurrency=2, seconds=0.5, warmup=0)
                time.sleep(1.0)  # idle: the requests are served, nothing is in flight
                rss[name].append(server.rss_mb())
            finally:
                server.stop()
    lines = []
    for name in commands:
        median_s, median_mb = statistics.median(ready[name]), statistics.median(rss[name])
        lines += [{"measure": "ready", "command": name, "runs": runs, "median_s": round(median_s, 3),
                   "all_s": [round(v, 3) for v in ready[name]], "target_s": TARGETS["ready_s"],
                   "met": median_s <= TARGETS["ready_s"]},
                  {"measure": "rss", "command": name, "runs": runs, "median_mb": round(median_mb, 1),
                   "all_mb": [round(v, 1) for v in rss[name]], "target_mb": TARGETS["rss_mb"],
                   "met": median_mb <= TARGETS["rss_mb"]}]
    return lines


def _opted_in_device(data: str) -> fleet.Device:
    """A paired device whose metrics are kept (opt-in), made through the store API."""
    store = Store(data)
    config = backend_config.load(os.path.join(SANDBOX, "none.conf"), {"data_path": data})
    login = pairing.pair_directly(store, config, str(uuidlib.uuid4()))
    store.devices.update(login["uuid"], lambda device: {**device, "opt_in": True})
    return fleet.Device(login)


def _prefill_metrics(data: str, count: int, uuid: str) -> None:
    """`count` metrics in the log, in the shape metric POSTs store, written in one go."""
    now = time.time()
    Store(data).metrics.rewrite([
        {"metric_id": uuidlib.uuid4().hex, "metric_type": "timing", "uuid": uuid,
         "timestamp": now - count + n, "meta": {"handler": "prefill", "time": 0.1, "n": n}}
        for n in range(count)])


def _stop_all(servers) -> None:
    for server in servers:
        server.stop()


def measure_metrics(commands: Dict[str, List[str]], count: int, posts: int) -> List[Dict]:
    """(c) metric POST latency, `count` metrics stored vs none: every server (an empty and a
    full one per command) gets one POST in turn, in an order that rotates."""
    setups = {(name, fill): Server(command, f"metrics-{name}-{fill}")
              for name, command in commands.items() for fill in ("empty", "full")}
    devices = {setup: _opted_in_device(server.data) for setup, server in setups.items()}
    for (name, fill), server in setups.items():
        if fill == "full":
            _prefill_metrics(server.data, count, devices[name, fill].uuid)
    latencies: Dict[tuple, List[float]] = {setup: [] for setup in setups}
    warmup, order = 20, list(setups)
    try:
        for server in setups.values():
            server.start()
        clients = {setup: fleet.Client(server.url) for setup, server in setups.items()}
        for n in range(warmup + posts):
            for setup in order[n % len(order):] + order[:n % len(order)]:
                begin = time.perf_counter()
                status = fleet.request(clients[setup], "metric_post", devices[setup])
                elapsed = time.perf_counter() - begin
                if status != 200:
                    raise RuntimeError(f"metric POST answered {status}")
                if n >= warmup:
                    latencies[setup].append(elapsed * 1000)
    finally:
        _stop_all(setups.values())
    lines = []
    for name in commands:
        with open(os.path.join(setups[name, "full"].data, "metrics.jsonl"), "rb") as f:
            stored = sum(1 for _ in f)
        if stored != count + warmup + posts:  # the POSTs were stored, not just answered
            raise RuntimeError(f"{stored} metrics stored, {count + warmup + posts} expected")
        medians = {fill: statistics.median(latencies[name, fill]) for fill in ("empty", "full")}
        lines += [{"measure": "metric_post", "command": name,
                   "stored": count if fill == "full" else 0, "posts": posts,
                   "median_ms": round(medians[fill], 3),
                   "p95_ms": round(fleet.percentile(latencies[name, fill], 95), 3)}
                  for fill in ("empty", "full")]
        ratio = medians["full"] / medians["empty"]
        lines.append({"measure": "metric_post_ratio", "command": name,
                      "full_over_empty": round(ratio, 3), "target": TARGETS["metrics_ratio"],
                      "met": ratio <= TARGETS["metrics_ratio"]})
    return lines


def measure_fleet(commands: Dict[str, List[str]], seconds: float, processes: int,
                  rounds: int) -> List[Dict]:
    """(d) throughput of the mix with 1,000 devices vs 10, at the same concurrency: each
    server takes its turn in every round."""
    servers = {(name, size): Server(command, f"fleet-{name}-{size}")
               for name, command in commands.items() for size in (10, 1000)}
    raws: Dict[tuple, List[dict]] = {setup: [] for setup in servers}
    try:
        fleets = {}
        for setup, server in servers.items():
            server.start()
            fleets[setup] = fleet.pair_fleet(server.url, setup[1], threads=4)
        for round_number in range(rounds):
            for setup, server in servers.items():
                raws[setup].append(fleet.load(server.url, fleets[setup], 8, seconds,
                                              processes=processes, seed=round_number + 1))
    finally:
        _stop_all(servers.values())
    lines = []
    for name in commands:
        sizes = [{"measure": "fleet", "command": name,
                  **fleet.summarise(servers[name, size].url, size, 8, raws[name, size])}
                 for size in (10, 1000)]
        ratio = sizes[1]["rps"] / sizes[0]["rps"]
        # each round's own ratio shows how much of the spread is the machine's
        smalls, bigs = raws[name, 10], raws[name, 1000]  # one result per round each
        by_round = [len(bigs[i]["latencies"]) / bigs[i]["seconds"]
                    / (len(smalls[i]["latencies"]) / smalls[i]["seconds"])
                    for i in range(min(len(smalls), len(bigs)))]
        lines += sizes + [{"measure": "fleet_ratio", "command": name,
                           "rps_1000_over_10": round(ratio, 3),
                           "rounds": [round(r, 3) for r in by_round],
                           "target": TARGETS["fleet_ratio"], "met": ratio >= TARGETS["fleet_ratio"]}]
    return lines


def measure_p99(commands: Dict[str, List[str]], seconds: float, processes: int) -> List[Dict]:
    """(e) latency of the mix at concurrency 32 with 100 devices; and, for reference, of
    `GET /` alone at the same concurrency: the cheapest route, nearly all of whose cost is
    the HTTP server and Flask, i.e. the floor under any route on this machine."""
    servers = {name: Server(command, f"p99-{name}") for name, command in commands.items()}
    raws: Dict[tuple, dict] = {}
    try:
        devices = {}
        for name, server in servers.items():
            server.start()
            devices[name] = fleet.pair_fleet(server.url, 100, threads=4)
        for kind, mix in (("mix", fleet.MIX), ("index", {"index": 1})):
            for name, server in servers.items():
                raws[name, kind] = fleet.load(server.url, devices[name], 32, seconds,
                                              processes=processes, mix=mix)
    finally:
        _stop_all(servers.values())
    lines = []
    for name, server in servers.items():
        mix, index = (fleet.summarise(server.url, 100, 32, [raws[name, kind]])
                      for kind in ("mix", "index"))
        lines += [{"measure": "p99", "command": name, **mix, "target_ms": TARGETS["p99_ms"],
                   "met": mix["p99_ms"] <= TARGETS["p99_ms"]},
                  {"measure": "p99_floor", "command": name, "route": "GET /", **index}]
    return lines


def main(argv: Optional[List[str]] = None, emit: Callable[[str], None] = print) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="ready,rss,metrics,fleet,p99",
                        help="comma-separated: ready, rss, metrics, fleet, p99")
    parser.add_argument("--baseline", help="a second server command to measure side by side")
    parser.add_argument("--runs", type=int, default=5, help="starts for ready and rss")
    parser.add_argument("--metrics", type=int, default=100_000, help="metrics stored beforehand")
    parser.add_argument("--posts", type=int, default=300, help="metric POSTs to each server")
    parser.add_argument("--seconds", type=float, default=5, help="measured seconds of each load")
    parser.add_argument("--rounds", type=int, default=4, help="turns of each fleet size")
    parser.add_argument("--processes", type=int, default=2, help="load generator processes")
    args = parser.parse_args(argv)
    wanted = set(args.only.split(","))
    if not os.access(COMMAND, os.X_OK):
        parser.error(f"{COMMAND} not found: install this package into the Python running this")
    commands = {"current": [COMMAND]}
    if args.baseline:
        commands["baseline"] = shlex.split(args.baseline)
    try:
        if wanted & {"ready", "rss"}:
            for line in measure_start(commands, args.runs):
                if line["measure"] in wanted:
                    emit(json.dumps(line))
        steps = {
            "metrics": lambda: measure_metrics(commands, args.metrics, args.posts),
            "fleet": lambda: measure_fleet(commands, args.seconds, args.processes, args.rounds),
            "p99": lambda: measure_p99(commands, args.seconds, args.processes),
        }
        for step, measure in steps.items():
            if step in wanted:
                for line in measure():
                    emit(json.dumps(line))
    finally:
        shutil.rmtree(SANDBOX, ignore_errors=True)


if __name__ == "__main__":
    main()
