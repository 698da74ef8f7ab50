"""Concurrent writers against the live server: every acknowledged write must be readable.

16 threads x 200 writes by default (env PB_THREADS / PB_WRITES scale it), each thread a
paired, opted-in device mixing (helpers.write_kind):
  60 % metrics        POST /device/{uuid}/metric/{name}   (append log)
  30 % skill settings PUT /device/{uuid}/skill            (read-modify-write of one shared
                      record per skill, 4 skills shared by all threads: contended)
  10 % pairings       GET /device/code + POST /device/activate (new device files)
Then every acknowledged write is read back: metrics from the data folder's log, settings
through GET /skill/settings, pairings through GET /device/{uuid} with the returned token.
Every write is fsynced, so the run time mostly measures the disk's fsync rate.
"""
import os
import time

from helpers import Writer, acked_counts, lost_writes, opt_in, raw_pair

THREADS = int(os.environ.get("PB_THREADS", 16))
WRITES = int(os.environ.get("PB_WRITES", 200))


def test_no_acknowledged_write_is_lost(live_server, store, config):
    # 16 devices pairing at once from one address: over the flood bound for waiting codes
    # (a household's devices pair one by one); this test is about durability, not that bound
    config["server"]["max_pending_codes_per_address"] = THREADS * 2
    url = live_server.url
    logins = [raw_pair(url) for _ in range(THREADS)]
    for login in logins:
        opt_in(url, login["uuid"])
    writers = [Writer(url, f"w{n}", login, writes=WRITES) for n, login in enumerate(logins)]

    started = time.monotonic()
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    elapsed = time.monotonic() - started

    acked = acked_counts(writers)
    failures = [f for w in writers for f in w.failures]
    lost = lost_writes(url, store.path, writers)
    total = sum(acked.values())
    print(f"\nconcurrency: {THREADS} threads x {WRITES} writes in {elapsed:.1f} s "
          f"({total / elapsed:.0f} acknowledged writes/s); acknowledged {dict(acked)}; "
          f"failed {len(failures)}; lost {dict(lost)} (total lost {sum(lost.values())})")
    assert failures == [], failures[:5]
    assert total == THREADS * WRITES
    assert sum(lost.values()) == 0, dict(lost)
    assert len(store.devices) == THREADS + acked["pairing"]
