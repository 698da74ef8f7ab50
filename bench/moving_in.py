"""Moving in and backups at household-and-beyond scale: the import of an old backend
(0.1.x json_database files) with 1,000 devices and 100,000 metrics, then a backup and a
restore of the store it made.

    python bench/moving_in.py                      # 1,000 devices, 100,000 metrics, 3 rounds
    python bench/moving_in.py --devices 100 --metrics 10000 --rounds 5

The old files are written in the shapes the real 0.1.5 server writes (a device record is
its fixed key set, metrics are `{"ovos_metrics": [...]}` rows; see
test/legacy_backends.py for the data the real server makes). Everything happens in a
temporary sandbox that HOME and every XDG_* variable point to. Prints min/median/max
seconds over the rounds, and the archive's size.
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid as uuidlib

SANDBOX = tempfile.mkdtemp(prefix="pb-moving-in-")
for _var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
    os.environ[_var] = os.path.join(SANDBOX, _var.lower())  # before OVOS imports
os.environ["HOME"] = SANDBOX

from ovos_skill_personal_backend.backend import backup, legacy_import  # noqa: E402
from ovos_skill_personal_backend.backend import config as backend_config  # noqa: E402
from ovos_skill_personal_backend.backend.store import Store  # noqa: E402

LOCATION = {"city": {"code": "Lisbon", "name": "Lisbon",
                     "state": {"code": "11", "name": "Lisbon",
                               "country": {"code": "PT", "name": "Portugal"}}},
            "coordinate": {"latitude": 38.7167, "longitude": -9.1333},
            "timezone": {"code": "Europe/Lisbon", "name": "Western European Time"}}


def old_home(folder: str, devices: int, metrics: int) -> str:
    """A home folder as 0.1.5 leaves it, with `devices` devices and `metrics` metrics."""
    cache = os.path.join(folder, ".cache", "json_database")
    share = os.path.join(folder, ".local", "share", "json_database")
    os.makedirs(cache)
    os.makedirs(share)
    uuids = [str(uuidlib.uuid4()) for _ in range(devices)]
    records = {uuid: {
        "uuid": uuid, "token": f"ABC{n % 1000:03d}:{uuid}", "isolated_skills": False,
        "name": f"Device {n}", "device_location": "kitchen", "email": None, "date_format": "DMY",
        "system_unit": "metric", "time_format": "full", "opt_in": True, "lang": "en-us",
        "location": LOCATION, "default_tts": "ovos-tts-plugin-mimic",
        "default_tts_cfg": {"module": "ovos-tts-plugin-mimic", "voice": "ap"},
        "default_ww": "hey_mycroft", "default_ww_cfg": {"module": "ovos-ww-plugin-pocketsphinx",
                                                        "phonemes": "HH EY . M AY K R AO F T"}}
        for n, uuid in enumerate(uuids)}
    with open(os.path.join(cache, "ovos_devices.json"), "w") as f:
        json.dump(records, f, indent=4)
    rows = [{"metric_id": n + 1, "metric_type": "timing", "uuid": uuids[n % devices],
             "meta": {"id": "stt", "system": "speech", "start_time": 1733500000.5 + n, "time": 0.42,
                      "stt": "ovos-stt-plugin-server"}} for n in range(metrics)]
    with open(os.path.join(share, "ovos_metrics.jsondb"), "w") as f:
        json.dump({"ovos_metrics": rows}, f, indent=4)
    return folder


def spread(values) -> str:
    return (f"min {min(values):.2f} s, median {statistics.median(values):.2f} s, "
            f"max {max(values):.2f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--metrics", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    home = old_home(os.path.join(SANDBOX, "old-home"), args.devices, args.metrics)
    timings = {"import": [], "second import (nothing new)": [], "backup": [], "restore": []}
    size = 0
    for n in range(args.rounds):
        data = os.path.join(SANDBOX, f"data-{n}")
        conf = os.path.join(SANDBOX, f"backend-{n}.conf")
        config = backend_config.load(conf, {"data_path": data})
        for name in ("import", "second import (nothing new)"):
            started = time.perf_counter()
            report = legacy_import.run(Store(data), config, conf, home)
            timings[name].append(time.perf_counter() - started)
        assert report.already_here["devices"] == args.devices, report.lines()
        archive = os.path.join(SANDBOX, f"backup-{n}.tar.gz")
        started = time.perf_counter()
        manifest = backup.write(Store(data), conf, archive)
        timings["backup"].append(time.perf_counter() - started)
        assert manifest["counts"]["metrics"] == args.metrics, manifest["counts"]
        size = os.path.getsize(archive)
        started = time.perf_counter()
        backup.restore(archive, os.path.join(SANDBOX, f"restored-{n}"), None)
        timings["restore"].append(time.perf_counter() - started)
        shutil.rmtree(data)
    print(f"old 0.1.x store: {args.devices} devices, {args.metrics} metrics; {args.rounds} rounds")
    for name, values in timings.items():
        print(f"{name:30s} {spread(values)}")
    print(f"{'backup archive':30s} {size / 1024 / 1024:.1f} MiB (gzip), "
          f"{sum(e['bytes'] for e in manifest['files'].values()) / 1024 / 1024:.1f} MiB of data")
    shutil.rmtree(SANDBOX, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
