"""What a write costs as the store grows, and whether writers of different devices wait
for each other: side by side in one run.

    python bench/writes.py [--writes 240] [--rounds 4] [--devices 1000] [--skills 500]
                           [--metrics 100000] [--threads 8]

Two standalone servers (bench/scale.py's sandbox): one on an empty store, one on a store
holding `--devices` devices, `--skills` skills' shared settings and `--metrics` metrics
(made through the store before it starts). On each, one device sends each kind of write
in turn, the servers alternating request by request (the order rotating), so a load
change on a shared machine hits both:

* skill_put:   PUT /device/{uuid}/skill with a changed value (one skill's record written)
* metric_post: POST /device/{uuid}/metric/timing (the device opted in: stored)
* pairing:     GET /device/code + POST /device/activate (a new device)

Prints one line per kind and store (latency median and p95 in ms; the median of each
round: min/median/max), one line per kind with full/empty (target <= 1.2), and, from
the full store, the skill PUTs per second of `--threads` devices at once over one
device's (`parallel`): writers who waited for each other's fsync would gain nothing.
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import threading
import time
import uuid as uuidlib
from typing import Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fleet  # noqa: E402
import scale  # noqa: E402  (its sandbox: HOME and XDG_* point there before OVOS imports)
from ovos_skill_personal_backend.backend import config as backend_config  # noqa: E402
from ovos_skill_personal_backend.backend import pairing, skill_settings  # noqa: E402
from ovos_skill_personal_backend.backend.store import Store  # noqa: E402
from sync_poll import spread  # noqa: E402

KINDS = ("skill_put", "metric_post", "pairing")
TARGET_RATIO = 1.2


def fill(data: str, devices: int, skills: int, metrics: int) -> None:
    """A store as a big household's after years: devices, skills' settings, metrics."""
    store = Store(data)
    config = backend_config.load(os.path.join(scale.SANDBOX, "none.conf"), {"data_path": data})
    uuids = [pairing.pair_directly(store, config)["uuid"] for _ in range(devices)]
    for n in range(skills):
        skill_settings.shared_put(store, f"skill-fill-{n}.openvoiceos", settings={
            "volume": n, "city": "Lisbon", "units": "metric", "note": "x" * 80})
    scale._prefill_metrics(data, metrics, uuids[0] if uuids else str(uuidlib.uuid4()))
    os.sync()  # else the kernel writes the fill back during the first rounds, slowing the full store's fsyncs


def skill_put(client: fleet.Client, device: fleet.Device, value: int, skill: str = fleet.SKILL) -> int:
    """A settings upload whose value changed: the skill's record is written."""
    meta = {"sections": [{"name": "Bench", "fields": [
        {"name": "volume", "type": "number", "label": "Volume", "value": str(value)}]}]}
    return client.call("PUT", f"/device/{device.uuid}/skill", device.headers(), {
        "skill_gid": f"@{device.uuid}|{skill}", "display_name": "Bench", "skillMetadata": meta})[0]


def write(client: fleet.Client, device: fleet.Device, kind: str, n: int) -> int:
    if kind == "skill_put":
        return skill_put(client, device, n)
    if kind == "metric_post":
        return fleet.request(client, "metric_post", device)
    fleet.pair(client)
    return 200


def measure(servers: Dict[str, scale.Server], writes: int, rounds: int) -> List[dict]:
    """Latency of each kind of write on each server, alternating request by request."""
    devices = {name: scale._opted_in_device(server.data) for name, server in servers.items()}
    for server in servers.values():
        server.start()
    clients = {name: fleet.Client(server.url) for name, server in servers.items()}
    order = list(servers)
    ms: Dict[tuple, List[List[float]]] = {(k, s): [] for k in KINDS for s in servers}
    warmup = 10
    for number in range(rounds):
        for key in ms:
            ms[key].append([])
        per_round = writes // rounds
        for n in range(-warmup if number == 0 else 0, per_round):
            for kind in KINDS:
                turn = order[n % 2:] + order[:n % 2]
                for name in turn:
                    begin = time.perf_counter()
                    status = write(clients[name], devices[name], kind, number * per_round + n + warmup)
                    elapsed = (time.perf_counter() - begin) * 1000
                    if status != 200:
                        raise RuntimeError(f"{kind} answered {status}")
                    if n >= 0:
                        ms[kind, name][-1].append(elapsed)
    lines = []
    for kind in KINDS:
        medians = {}
        for name in servers:
            pooled = [v for r in ms[kind, name] for v in r]
            medians[name] = statistics.median(pooled)
            lines.append({"write": kind, "store": name, "writes": len(pooled),
                          "median_ms": round(medians[name], 3),
                          "p95_ms": round(fleet.percentile(pooled, 95), 3),
                          "round medians [min, median, max]":
                              spread([statistics.median(r) for r in ms[kind, name]])})
        by_round = [statistics.median(f) / statistics.median(e)
                    for f, e in zip(ms[kind, "full"], ms[kind, "empty"], strict=True)]
        ratio = medians["full"] / medians["empty"]
        lines.append({"write": kind, "full / empty": round(ratio, 3),
                      "rounds [min, median, max]": spread(by_round),
                      "target <=": TARGET_RATIO, "met": ratio <= TARGET_RATIO})
    return lines


def parallel(server: scale.Server, threads: int, seconds: float) -> dict:
    """Skill PUTs per second, each thread a device writing its own skill, 1 vs `threads`."""
    logins = [fleet.pair(fleet.Client(server.url)) for _ in range(threads)]
    rates = {}

    def writer(number: int, done: List[int], deadline: float) -> None:
        client, device = fleet.Client(server.url), logins[number]
        while time.monotonic() < deadline:
            if skill_put(client, device, done[number], f"skill-own-{number}.openvoiceos") != 200:
                raise RuntimeError("skill PUT failed")
            done[number] += 1

    for count in (1, threads, 1):
        done = [0] * count
        deadline = time.monotonic() + seconds
        pool = [threading.Thread(target=writer, args=(n, done, deadline)) for n in range(count)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        rates.setdefault(count, []).append(sum(done) / seconds)
    one = statistics.mean(rates[1])
    return {"parallel": "skill_put/s", "threads": threads, "one device": round(one, 1),
            f"{threads} devices": round(rates[threads][0], 1),
            "ratio": round(rates[threads][0] / one, 2)}


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=240, help="of each kind, per server")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--skills", type=int, default=500)
    parser.add_argument("--metrics", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3, help="of each parallel run")
    args = parser.parse_args(argv)
    servers = {name: scale.Server([scale.COMMAND], f"writes-{name}") for name in ("empty", "full")}
    try:
        began = time.perf_counter()
        fill(servers["full"].data, args.devices, args.skills, args.metrics)
        print(json.dumps({"filled": {"devices": args.devices, "skills": args.skills,
                                     "metrics": args.metrics},
                          "seconds": round(time.perf_counter() - began, 1)}), flush=True)
        for line in measure(servers, args.writes, args.rounds):
            print(json.dumps(line), flush=True)
        print(json.dumps(parallel(servers["full"], args.threads, args.seconds)), flush=True)
    finally:
        scale._stop_all(servers.values())
        shutil.rmtree(scale.SANDBOX, ignore_errors=True)


if __name__ == "__main__":
    main()
