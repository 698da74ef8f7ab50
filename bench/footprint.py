"""What the skill adds to ovos-core's skills process: memory after a place lookup, and
how long its initialize() takes. Side by side in one run.

    python bench/footprint.py [--runs 3]

Each run starts two fresh processes, in turn, in bench/scale.py's sandbox (HOME and XDG_*
there, the skill's settings on a free port and a data folder in it): the real ovos-core
skill loader and intent service (ovoscope's MiniCroft) with no skill, and with this
skill, which then looks up a place as "change my location to Lisbon" does (the first
lookup loads the gazetteer). Each reports its resident memory (VmRSS) once idle; the
second also the seconds its initialize() took. Needs ovoscope (test/requirements.txt).

Prints one line per process kind (RSS MB, min/median/max over runs), one line with the
skill's cost (with - without, per run) against the target (<= 25 MB), and initialize()'s
seconds against its target (<= 0.5 s). Linux only (/proc).
"""
import argparse
import gc
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from typing import List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import scale  # noqa: E402  (its sandbox: HOME and XDG_* point there before OVOS imports)
from sync_poll import spread  # noqa: E402

SKILL_ID = "ovos-skill-personal-backend.openvoiceos"
TARGETS = {"rss_mb": 25, "initialize_s": 0.5}


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS line in /proc/self/status")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_settings(run: str) -> None:
    """The skill's settings: a free port and a data folder of this run's own."""
    folder = os.path.join(os.environ["XDG_CONFIG_HOME"], "mycroft", "skills", SKILL_ID)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "settings.json"), "w") as f:
        json.dump({"port": _free_port(), "pairing": "auto", "point_device_here": False,
                   "data_path": os.path.join(scale.SANDBOX, f"footprint-{run}")}, f)


def child(with_skill: bool, run: str) -> dict:
    """In a fresh process: a MiniCroft with or without the skill; its RSS once idle."""
    timed = {}
    skills = []
    if with_skill:
        _write_settings(run)
        from ovos_skill_personal_backend.skill import PersonalBackendSkill

        initialize = PersonalBackendSkill.initialize

        def timed_initialize(self):
            began = time.perf_counter()
            try:
                return initialize(self)
            finally:
                timed["initialize_s"] = time.perf_counter() - began

        PersonalBackendSkill.initialize = timed_initialize
        skills = [SKILL_ID]
    from ovoscope import get_minicroft

    croft = get_minicroft(skills, lang="en-US")
    try:
        if with_skill:
            from ovos_skill_personal_backend.backend.services import places
            if not places.search("Lisbon"):
                raise RuntimeError("the place lookup found nothing")
        gc.collect()
        time.sleep(1.0)  # idle: threads started, nothing in flight
        return {"rss_mb": rss_mb(), **timed}
    finally:
        croft.stop()


def measure(runs: int) -> List[dict]:
    results = {"without": [], "with": []}
    for run in range(runs):
        for kind in ("without", "with") if run % 2 == 0 else ("with", "without"):
            out = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--child", kind, "--run", str(run)],
                env=scale.ENVIRONMENT, capture_output=True, text=True, timeout=300)
            lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
            if out.returncode != 0 or not lines:
                raise RuntimeError(f"the {kind} process failed: {out.stderr[-2000:]}")
            results[kind].append(json.loads(lines[-1]))
    lines = [{"process": f"skills process {kind} the skill", "runs": runs,
              "rss_mb [min, median, max]": spread([r["rss_mb"] for r in results[kind]])}
             for kind in ("without", "with")]
    cost = [w["rss_mb"] - wo["rss_mb"] for w, wo in zip(results["with"], results["without"],
                                                        strict=True)]
    initialize = [r["initialize_s"] for r in results["with"]]
    lines.append({"skill rss cost after a place lookup (MB) [min, median, max]": spread(cost),
                  "target <=": TARGETS["rss_mb"], "met": statistics.median(cost) <= TARGETS["rss_mb"]})
    lines.append({"skill initialize() s [min, median, max]": spread(initialize),
                  "target <=": TARGETS["initialize_s"],
                  "met": statistics.median(initialize) <= TARGETS["initialize_s"]})
    return lines


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", choices=("with", "without"), help=argparse.SUPPRESS)
    parser.add_argument("--run", default="0", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:  # a child made its own sandbox when it imported scale
        if args.child:
            print(json.dumps(child(args.child == "with", args.run)), flush=True)
            return
        for line in measure(args.runs):
            print(json.dumps(line), flush=True)
    finally:
        shutil.rmtree(scale.SANDBOX, ignore_errors=True)


if __name__ == "__main__":
    main()
