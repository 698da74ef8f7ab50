"""What an idle device's sync poll costs the server, with and without ETags.

    python bench/sync_poll.py [--devices 20] [--skills 15] [--polls 2000] [--rounds 5]

Starts the standalone server in a child process on loopback, pairs `--devices` devices,
gives each the skills and settings a device's agent uploads, then replays the agent's
idle round (GET /setting and GET /skill/sync, nothing changed) in two modes, taking
turns each round so a load change on a shared machine hits both:

* `etag`: the agent's way: If-None-Match with the tags of the last answers (304s);
* `plain`: the same requests without it (full bodies, as a client without ETags).

Prints one JSON line per mode (server CPU ms per poll, from the child's /proc stat,
and bytes received per poll, each min/median/max over rounds; polls/s) and one line of
ratios plain/etag. Linux only (reads /proc). Compare within one run, not across runs.
"""
import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

from fleet import Client, Device, pair

SETTINGSMETA = {"sections": [{"name": "Bench", "fields": [
    {"name": "volume", "type": "number", "label": "Volume", "value": "5"},
    {"name": "enabled", "type": "checkbox", "label": "Enabled", "value": "true"},
    {"name": "greeting", "type": "text", "label": "Greeting", "value": "hello"}]}]}
POLL = ("/setting", "/skill/sync")


def start_server(port: int, data: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "ovos_skill_personal_backend.backend.cli", "--port", str(port),
         "--data-dir", data], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in process.stdout:
        if "serving on" in line:
            return process
    raise RuntimeError("the server did not start")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (clock ticks)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def furnish(client: Client, device: Device, skills: int) -> None:
    """What the agent uploads at its first round: installed skills, definitions, values."""
    ids = [f"skill-bench-{n}.openvoiceos" for n in range(skills)]
    calls = [("PUT", "/skillJson", {"blacklist": [], "skills": [
        {"name": s, "skill_gid": f"@{device.uuid}|{s}"} for s in ids]})]
    for s in ids:
        calls.append(("PUT", "/settingsMeta", {"skill_gid": f"@{device.uuid}|{s}", **SETTINGSMETA}))
        calls.append(("PATCH", "/skill/sync", {"skill_id": s, "settings": {"volume": 7}}))
    for method, path, body in calls:
        status, answer = client.call(method, f"/device/{device.uuid}{path}", device.headers(), body)
        if status != 200:
            raise RuntimeError(f"{method} {path} answered {status}: {answer[:200]!r}")


def poll_round(port: int, fleet: List[Device], polls: int, conditional: bool, pid: int) -> Dict:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    tags: Dict[str, str] = {}
    received = 0
    cpu, began = cpu_seconds(pid), time.perf_counter()
    for n in range(polls):
        device = fleet[n % len(fleet)]
        for path in POLL:
            url = f"/v1/device/{device.uuid}{path}"
            headers = {"Authorization": f"Bearer {device.access}"}
            if conditional and url in tags:
                headers["If-None-Match"] = tags[url]
            connection.request("GET", url, headers=headers)
            response = connection.getresponse()
            body = response.read()
            if response.status not in (200, 304):
                raise RuntimeError(f"GET {url} answered {response.status}")
            received += len(body) + sum(len(k) + len(v) + 4 for k, v in response.getheaders())
            if response.getheader("ETag"):
                tags[url] = response.getheader("ETag")
    elapsed, cpu = time.perf_counter() - began, cpu_seconds(pid) - cpu
    connection.close()
    return {"cpu_ms": 1000 * cpu / polls, "bytes": received / polls, "polls_s": polls / elapsed}


def spread(values: List[float]) -> List[float]:
    return [round(min(values), 3), round(statistics.median(values), 3), round(max(values), 3)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--skills", type=int, default=15, help="skills per device")
    parser.add_argument("--polls", type=int, default=2000, help="polls per mode and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--port", type=int, default=6799)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        server = start_server(args.port, data)
        try:
            client = Client(f"http://127.0.0.1:{args.port}")
            fleet = [pair(client) for _ in range(args.devices)]
            for device in fleet:
                furnish(client, device, args.skills)
            results = {"etag": [], "plain": []}
            for number in range(args.rounds):
                modes = ["etag", "plain"] if number % 2 == 0 else ["plain", "etag"]
                for mode in modes:
                    results[mode].append(poll_round(args.port, fleet, args.polls, mode == "etag",
                                                    server.pid))
        finally:
            server.terminate()
            server.wait(15)
    summary = {}
    for mode, rounds in results.items():
        summary[mode] = {key: spread([r[key] for r in rounds]) for key in rounds[0]}
        print(json.dumps({"mode": mode, "devices": args.devices, "skills": args.skills,
                          "polls": args.polls, "rounds": args.rounds,
                          **{f"{k} [min, median, max]": v for k, v in summary[mode].items()}}))
    print(json.dumps({"plain / etag": {key: round(summary["plain"][key][1] / summary["etag"][key][1], 2)
                                       for key in ("cpu_ms", "bytes")},
                      "etag / plain polls_s": round(summary["etag"]["polls_s"][1] /
                                                    summary["plain"]["polls_s"][1], 2)}))


if __name__ == "__main__":
    main()
