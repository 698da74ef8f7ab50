"""How long a device takes to join the household backend, and to find it again after it moved.

    python bench/join.py [--rounds 5]     # as root

Runs two devices (test/device_process.py: each the skill in its own ovoscope MiniCroft,
own HOME/XDG tree and bus) in a private network namespace (root needed; nothing leaves it):
one runs the backend (confirm pairing, announced over DNS-SD), the other is in client mode.
Each round, by voice: the client says "connect to the personal backend", the server device
hears "approve the new device"; then the backend restarts on another port; then the client
says "disconnect from the personal backend" (the next round pairs it afresh). Prints one
JSON line per figure, min/median/max over rounds, in seconds:

* `approval_to_sync`: from the approval spoken on the server device to the client's first
  completed sync round (identity2.json written, settings pulled and pushed);
* `move_to_sync`: from the backend's restart on a new port (its settings saved) to the
  client's first completed sync round with it there (the client rediscovers it over DNS-SD).
"""
import argparse
import json
import os
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test"))
from device_process import DeviceProcess, private_network  # noqa: E402

ADMIN_KEY = "bench-admin-key-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(predicate, timeout: float = 120, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(step)
    raise RuntimeError("timed out")


def one_round(server: DeviceProcess, client: DeviceProcess) -> dict:
    mark = server.call("mark")
    turn = client.call("say", text="connect to the personal backend")
    assert turn["dialogs"] == ["join.code"], turn
    assert server.call("wait_dialog", dialog="pairing.requested", since=mark["index"])["found"]
    assert server.call("say", text="approve the new device")["dialogs"] == ["approved"]
    approved = time.time()
    synced = wait(lambda: client.call("status")["last_sync"])
    moved = time.time()
    port = free_port()
    server.call("settings", values={"port": port})

    def followed():
        status = client.call("status")
        return (status["link_url"] or "").endswith(f":{port}") and status["reachable"] and \
            status["last_sync"] > moved and status["last_sync"]

    resynced = wait(followed)
    assert client.call("say", text="disconnect from the personal backend")["dialogs"] == \
        ["left.backend"]
    return {"approval_to_sync": synced - approved, "move_to_sync": resynced - moved}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with private_network(f"pb-bench-{os.getpid()}") as launcher:
        if launcher is None:
            sys.exit("needs root and iproute2 (a private network namespace)")
        server = DeviceProcess({"mode": "server", "host": "0.0.0.0", "pairing": "confirm",
                                "admin_key": ADMIN_KEY, "port": free_port()}, launcher=launcher)
        client = DeviceProcess({"mode": "client"}, launcher=launcher)
        try:
            rounds = [one_round(server, client) for _ in range(args.rounds)]
        finally:
            client.stop()
            server.stop()
    for figure in ("approval_to_sync", "move_to_sync"):
        values = [r[figure] for r in rounds]
        print(json.dumps({"figure": figure, "rounds": len(values), "unit": "s",
                          "min": round(min(values), 3),
                          "median": round(statistics.median(values), 3),
                          "max": round(max(values), 3)}))


if __name__ == "__main__":
    main()
