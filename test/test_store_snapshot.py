"""A backup's snapshot of the store under concurrent writes (#18 on #14's journals): every
write acknowledged before it is in it, every record whole, and a store opened on its files
(a restore) reads back what the snapshot counted."""
import os
import threading

from ovos_skill_personal_backend.backend import store as store_module
from ovos_skill_personal_backend.backend.store import Store


def _writers(store: Store, stop: threading.Event, acked: dict):
    """Threads writing shared skill settings (journal lines), OAuth states (one file each) and
    metrics in batches (`extend`); each notes what was acknowledged."""
    def settings(n):
        seq = 0
        while not stop.is_set():
            seq += 1
            store.shared_skills.put(f"skill{n}-{seq}", {"seq": seq, "pad": "x" * 20})
            acked[f"skill{n}"] = seq

    def states():
        seq = 0
        while not stop.is_set():
            seq += 1
            store.oauth_states.put(f"state{seq % 7}", {"seq": seq})
            acked["states"] = seq

    def metrics():
        seq = 0
        while not stop.is_set():
            store.metrics.extend([{"seq": seq + i} for i in range(50)])
            seq += 50
            acked["metrics"] = seq
    return ([threading.Thread(target=settings, args=(n,)) for n in range(3)]
            + [threading.Thread(target=states), threading.Thread(target=metrics)])


def _restore(files: dict, folder) -> Store:
    """A store opened on the snapshot's files, as a restore opens them."""
    for name, data in files.items():
        os.makedirs(folder / os.path.dirname(name), exist_ok=True)
        (folder / name).write_bytes(data)
    return Store(str(folder))


def test_a_snapshot_under_writes_holds_each_journal_and_every_acknowledged_write(tmp_path,
                                                                                 monkeypatch):
    monkeypatch.setattr(store_module, "FOLD_BYTES", 0)  # folds all the time, beside the reads
    store = Store(str(tmp_path / "live"))
    stop, acked = threading.Event(), {}
    threads = _writers(store, stop, acked)
    for thread in threads:
        thread.start()
    try:
        while len(acked) < 5:
            threading.Event().wait(0.01)
        for round_ in range(20):
            before, counts = dict(acked), {}
            files = dict(store.export(counts))
            assert "skill_settings.journal" in files  # the records written since the last fold
            again = _restore(files, tmp_path / f"restored{round_}")
            assert again.counts() == counts
            kept = set(again.shared_skills.keys())
            assert [f"skill{n}-{seq}" for n in range(3) for seq in range(1, before[f"skill{n}"] + 1)
                    if f"skill{n}-{seq}" not in kept] == []
            assert max(s["seq"] for s in again.oauth_states.all().values()) >= before["states"]
            seqs = sorted(m["seq"] for m in again.metrics.read())
            assert seqs == list(range(len(seqs))) and len(seqs) >= before["metrics"]  # whole batches
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
