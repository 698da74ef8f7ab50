"""Crash safety: SIGKILL the standalone server in the middle of writes, restart, check.

Each round starts `python -m ...backend.cli` on the same data folder, runs 4 writers
(the mix of helpers.Writer: metrics, contended skill settings, pairings) until the
server is killed with SIGKILL at a random moment, restarts it, then checks that
* every JSON / JSON Lines file in the data folder parses (no torn write survives),
* no file was rejected as corrupt at startup, and no temp file of the killed server is left,
* every write acknowledged in this or any earlier round can be read back.
5 rounds by default; LONG=1 runs 25 (PB_CRASH_ROUNDS sets any number).
"""
import json
import os
import random
import threading
import time

import pytest

from conftest import ADMIN_KEY, free_port
from helpers import (ServerProcess, Writer, acked_counts, assert_json_files_parse, data_files,
                     lost_writes, opt_in, raw_pair)

ROUNDS = int(os.environ.get("PB_CRASH_ROUNDS", 25 if os.environ.get("LONG") else 5))
WRITERS = 4


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "backend.conf"
    path.write_text(json.dumps({"server": {"admin_key": ADMIN_KEY}}))
    return str(path)


def _start(data_dir: str, config_file: str) -> ServerProcess:
    return ServerProcess("--port", str(free_port()), "--data-dir", data_dir, "--config", config_file).start()


def _url(server: ServerProcess) -> str:
    return server.banner.split("serving on ")[1].split()[0]


def test_acknowledged_writes_survive_sigkill(tmp_path, config_file):
    data_dir = str(tmp_path / "data")
    rng = random.Random(os.environ.get("PB_CRASH_SEED", 1234))
    server = _start(data_dir, config_file)
    all_writers, figures = [], []
    try:
        url = _url(server)
        logins = [raw_pair(url) for _ in range(WRITERS)]
        for login in logins:
            opt_in(url, login["uuid"])
        for round_number in range(ROUNDS):
            stop = threading.Event()
            writers = [Writer(url, f"r{round_number}w{n}", login, stop=stop) for n, login in enumerate(logins)]
            for w in writers:
                w.start()
            # let some writes be acknowledged, then kill at a random point
            while sum(acked_counts(writers).values()) < 20:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.05, 1.0))
            stop.set()  # writers start nothing new; what is in flight meets the kill
            server.kill()
            for w in writers:
                w.join(60)
            all_writers += writers

            server.stop()
            server = _start(data_dir, config_file)
            url = _url(server)
            checked = assert_json_files_parse(data_dir)
            rejected = [p for p in data_files(data_dir) if ".rejected-" in p]
            temp_left = [p for p in data_files(data_dir) if ".tmp-" in p]  # cleaned at startup
            lost = lost_writes(url, data_dir, all_writers)
            acked = acked_counts(writers)
            unacked = sum(len(w.failures) for w in writers)
            figures.append((acked, unacked, lost))
            print(f"\ncrash round {round_number + 1}/{ROUNDS}: acknowledged {dict(acked)}, "
                  f"in flight at the kill {unacked}, JSON files parsed {checked}, "
                  f"temp files left after restart {len(temp_left)}, rejected {len(rejected)}, "
                  f"lost so far {dict(lost)}")
            assert rejected == [] and temp_left == []
            assert sum(lost.values()) == 0, dict(lost)
    finally:
        server.stop()
    total = sum(sum(a.values()) for a, _, _ in figures)
    print(f"crash: {ROUNDS} SIGKILL rounds, {total} acknowledged writes, "
          f"{sum(u for _, u, _ in figures)} in flight at kills, 0 lost")
