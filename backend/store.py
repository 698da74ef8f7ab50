"""Persistence: the only module that touches the data directory.

Built on json_database's `JsonStorage` (the format users already edit by hand), with
the guarantees it lacks:

* atomic writes: temp file, fsync, `os.replace`, fsync of the folder, so a crash leaves
  either the old or the new file, never a truncated one;
* writers of one record serialised by a lock of that record (striped: `LOCK_STRIPES`),
  so writes to different devices or skills never wait for each other's fsync; readers
  never blocked: records are replaced, not mutated, so a reader always sees one whole
  version;
* a write costs one record whatever the store holds: a file per record (devices,
  pairings...), a line in a journal for the collections kept in one file (shared skill
  settings...: see `FileCollection`), a line in a log (metrics);
* data kept in memory; a `stat` of the record's file per access notices hand edits and
  reloads them (the store's own writes note what they changed, so they cause no reload
  and no rescan);
* a file that fails to parse, or holds a record of the wrong shape (each collection
  has its check, run when a file is loaded, never per read), is refused loudly: the
  last good copy (in memory, or the `.bak` kept beside every file) is restored, the
  bad file kept as `.rejected` and named in the log; the store is never silently
  emptied, and one bad file never fails the requests that do not read it;
* folders are created owner-only (0700), files written owner-only (0600); a refused
  write (a full disk: 507) is logged with the file's path;
* append-only records go to a JSON Lines log, so a write costs the same at any size;
* listeners are told the key of each record that changed, by a write or a hand edit
  (the in-process sync agent follows device records and shared skill settings);
* when each device was last seen lives in memory (`Presence`): a device polls every
  minute, and writing its file on each poll would cost an fsync per request.

Layout under the data path::

    devices/<uuid>.json      one file per record (devices, pairings, oauth_states, ...)
    <name>.json              collections kept in one file (shared skill settings, ...),
    <name>.journal           with the records written since it was last folded in
    <name>.jsonl             append-only logs (metrics)
    recordings/...           audio files written by the services
    *.bak                    the previous version of each file (a hard link)

A backup reads every collection through `Store.export` (each collection's `snapshot`:
whole records, every acknowledged write): the per-record files, each log, and each
`<name>.json` with its `<name>.journal`, which a restore opens as a start does,
replaying the journal over the file; never `*.tmp-*` (writes in progress),
`*.rejected-*` (refused hand edits) or `*.bak`. Data folders of
earlier versions (no journals) open as they are.
"""
import fcntl
import json
import math
import os
import re
import threading
import time
from contextlib import contextmanager
from os.path import basename, exists, isdir, join
from types import MappingProxyType
from typing import Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

from json_database import JsonStorage
from json_database.utils import load_commented_json
from ovos_utils.log import LOG

from .errors import BadRequest, StorageError
from .file_signature import signature as _signature

# ids become file names: letters, digits, '-' and '_' only, so no id can leave its folder
# (\Z, not $: "$" would also let a trailing newline into a file name)
SAFE_KEY = re.compile(r"^[A-Za-z0-9_-]{1,128}\Z")
# nesting levels a stored value may have: deeper ones exhaust Python's recursion limit
# when copied or written (a body of 900 nested objects made the write fail with a 500)
MAX_DEPTH = 64


class CorruptFile(Exception):
    """A data file exists but is not the JSON object it should be."""


# why a loaded value is refused (its shape is not what the code reading it relies on), or
# None when it is fine. Checked when a file is loaded, never per read: hot paths stay a peek.
Check = Callable[[object], Optional[str]]


def of_type(name: str, *kinds: type) -> Check:
    """Values of one of `kinds`, described as `name` ("text", "a number"). A bool is no
    number here, though Python makes it an int."""
    def check(value) -> Optional[str]:
        if isinstance(value, kinds) and (bool in kinds or not isinstance(value, bool)):
            return None
        return f"must be {name}"
    return check


def map_of(values: Check) -> Check:
    """A JSON object whose every value passes `values`."""
    def check(value) -> Optional[str]:
        if not isinstance(value, dict):
            return "must be an object"
        for key, item in value.items():
            reason = values(item)
            if reason:
                return f"{key[:64]!r} {reason}"
        return None
    return check


def json_object(required: Iterable[str] = (), **fields: Check) -> Check:
    """A JSON object holding every field of `required`, whose fields named in `fields`,
    when present, pass their check (other fields are free)."""
    def check(value) -> Optional[str]:
        if not isinstance(value, dict):
            return "must be an object"
        missing = [name for name in required if name not in value]
        if missing:
            return f"lacks {', '.join(missing)}"
        for name, field in fields.items():
            reason = field(value[name]) if name in value else None
            if reason:
                return f"{name} {reason}"
        return None
    return check


TEXT = of_type("text", str)
NUMBER = of_type("a number", int, float)
FLAG = of_type("true or false", bool)
OBJECT = of_type("an object", dict)
ANY_RECORD = json_object()


def check_storable(value) -> None:
    """BadRequest unless `value` can be written and read back as it is: nested at most
    MAX_DEPTH levels, text that UTF-8 can encode (a JSON `"\\ud800"` escape gives a
    lone surrogate, which it cannot), and finite numbers (Python's json reads `NaN` and
    `1e999` as floats and writes them back as bare `NaN`/`Infinity`, which is not JSON:
    clients then fail to parse what they are served). Checked before a write, so
    nothing is half-written."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                raise BadRequest("numbers must be finite: NaN and Infinity (or a number as "
                                 "large as 1e999) cannot be stored as JSON")
        elif isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    raise BadRequest("text must be valid Unicode (no lone surrogates "
                                     "\\ud800-\\udfff)") from None
        elif isinstance(item, (dict, list)):
            if depth > MAX_DEPTH:
                raise BadRequest(f"JSON nested deeper than {MAX_DEPTH} levels")
            if isinstance(item, dict):
                stack.extend((key, depth) for key in item)
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)


def _make_folder(path: str) -> None:
    """Create `path` (and missing parents) owner-only: the folders hold device ids and
    recordings. The mode is given to mkdir, never through the process umask, which the
    skill shares with ovos-core."""
    os.makedirs(path, mode=0o700, exist_ok=True)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _refused(action: str, path: str, error: OSError) -> StorageError:
    """The error for a change the file system refused (a full disk: 507), logged here with
    the file's full path, whichever door asked (API, web page, voice): the client is told
    the file's name only."""
    reason = error.strerror or str(error)
    LOG.error(f"cannot {action} {path}: {reason}")
    return StorageError(f"cannot {action} {basename(path)}: {reason}")


def write_atomic(path: str, data: bytes) -> None:
    """Replace `path` with `data` so that a crash leaves the old or the new content.

    Few system calls on purpose: each one hands the GIL to another request thread and
    waits for it back, which under load cost more CPU than the calls themselves (a token
    rotation made 14 of them). So no buffered file object (it adds fstat, ioctl, lseek)
    and no `exists` before acting: a missing file or `.bak` is known from the call's error.
    """
    folder = os.path.dirname(path)
    tmp = f"{path}.tmp-{os.getpid()}-{threading.get_ident()}"
    try:
        # owner-only: the store holds token hashes, OAuth tokens and recordings metadata
        # O_DSYNC: each write returns once its data is on disk (no separate fsync call)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DSYNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if not data:  # nothing written, nothing synced
                os.fsync(fd)
        finally:
            os.close(fd)
        _keep_previous(path)
        os.replace(tmp, path)
        _fsync_dir(folder)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise _refused("write", path, e) from e


def _keep_previous(path: str) -> None:
    """Keep the version `path` holds now beside it as `.bak` (a hard link: no copy)."""
    bak = path + ".bak"
    try:
        os.unlink(bak)
    except FileNotFoundError:
        pass
    try:
        os.link(path, bak)
    except FileNotFoundError:  # a new file: nothing to keep
        pass


TEMP_FILE = re.compile(r"\.tmp-(\d+)-\d+$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only checks the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    return True


def remove_stale_temp_files(folder: str) -> None:
    """A process killed mid-write leaves its temp file (the data file itself is whole):
    remove those of processes that are gone, so crashes do not pile them up."""
    for name in os.listdir(folder):
        match = TEMP_FILE.search(name)
        if match and not _pid_alive(int(match.group(1))):
            try:
                os.unlink(join(folder, name))
            except OSError:
                pass


class Document(JsonStorage):
    """One JSON object file. Loading is strict: a broken file raises `CorruptFile`."""

    def __init__(self, path: str, data: Optional[dict] = None):
        super().__init__(path="", disable_lock=True)  # "" = do not load yet
        self.path = path
        if data is not None:
            self.update(data)

    def load_local(self, path: str) -> None:
        try:
            data = load_commented_json(path)
        except (ValueError, UnicodeDecodeError) as e:
            raise CorruptFile(f"{path}: {e}") from e
        if not isinstance(data, dict):
            raise CorruptFile(f"{path}: expected a JSON object")
        self.clear()
        self.update(data)

    def store(self, path: Optional[str] = None) -> None:
        payload = json.dumps(self, indent=2, ensure_ascii=False, sort_keys=True)
        write_atomic(path or self.path, payload.encode("utf-8"))

    @classmethod
    def read(cls, path: str) -> "Document":
        doc = cls(path)
        doc.load_local(path)
        return doc


def clone(value):
    """A deep copy of JSON-shaped data (several times faster than copy.deepcopy)."""
    if isinstance(value, dict):
        return {k: clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clone(v) for v in value]
    return value


def _read_checked(path: str, check: Optional[Check]) -> Document:
    """The document in `path`; CorruptFile unless it parses and passes `check`."""
    doc = Document.read(path)
    reason = check(doc) if check else None
    if reason:
        raise CorruptFile(f"{path}: {reason}")
    return doc


def _good_copy(path: str, last_good: Optional[dict], check: Optional[Check]) -> Optional[Document]:
    """What to put back in place of a refused `path`: the last good version in memory,
    else the `.bak` beside the file if it passes; None when neither exists."""
    if last_good is not None:
        return Document(path, last_good)
    try:
        return _read_checked(path + ".bak", check) if exists(path + ".bak") else None
    except CorruptFile:
        return None


def _load_or_restore(path: str, last_good: Optional[dict], check: Optional[Check] = None,
                     initial: bool = False) -> Optional[Document]:
    """Load `path`. A file that does not parse or has the wrong shape is refused: kept as
    `.rejected-<time>`, named in the log, and the last good version put back. With none,
    the store does not start (`initial`) on data it cannot read; while serving, the
    refused file is left out, so one bad file never fails the requests of the others."""
    if not exists(path):
        return None
    try:
        return _read_checked(path, check)
    except CorruptFile as e:
        good = _good_copy(path, last_good, check)
        if good is None and initial:
            raise StorageError(f"data file {path} is corrupt and no good copy exists; "
                               "fix or remove it by hand", status=500) from e
        rejected = f"{path}.rejected-{int(time.time())}"
        LOG.error(f"refusing data file {e}; kept it as {rejected}")
        os.replace(path, rejected)
        if good is None:
            LOG.error(f"{path} had no good copy: left out until a good file takes its place")
            return None
        good.store(path)
        LOG.error(f"restored the last good copy of {path}")
        return good


# a line of a FileCollection's journal: a record written (or deleted: null)
_JOURNAL_LINE = json_object(("key", "record"), key=TEXT,
                            record=of_type("an object or null", dict, type(None)))
# a journal is folded into its file once it holds more than the file, and at least this
FOLD_BYTES = 64 * 1024

# told (collection name, record key) after a change
Listener = Callable[[str, str], None]

# writers of one collection take one of this many locks, chosen by the record's key: writes
# to different records (devices, skills) do not wait for each other's fsync
LOCK_STRIPES = 64


class Gate:
    """Many may pass at once (`shared`); one may close it (`closed`): it waits for those
    inside to leave and holds newcomers back until it is done. Appends to a log pass it
    together; a compaction or rewrite of the whole log closes it."""

    def __init__(self):
        self._condition = threading.Condition()
        self._inside = 0
        self._closed = False

    @contextmanager
    def shared(self):
        with self._condition:
            while self._closed:
                self._condition.wait()
            self._inside += 1
        try:
            yield
        finally:
            with self._condition:
                self._inside -= 1
                if not self._inside:
                    self._condition.notify_all()

    def close(self, blocking: bool = True) -> bool:
        """Close the gate once everyone inside left; False at once if it is closed
        already and not `blocking`."""
        with self._condition:
            while self._closed:
                if not blocking:
                    return False
                self._condition.wait()
            self._closed = True
            while self._inside:
                self._condition.wait()
            return True

    def open(self) -> None:
        with self._condition:
            self._closed = False
            self._condition.notify_all()

    @contextmanager
    def closed(self):
        self.close()
        try:
            yield
        finally:
            self.open()


class Collection:
    """Records keyed by id, with optional secondary indexes.

    `index` maps a record to the values it can be found by (e.g. token hashes);
    `validate` tells why a record loaded from disk (a hand edit) is refused, or None
    (writers check what they store themselves); `name` is what listeners are told.
    Reads return copies (or, with `peek`, the stored record itself: records are replaced,
    never changed in place); writes are durable when they return. Writers of one record
    wait for each other, never for writers of another record; readers never wait.
    """

    def __init__(self, name: str, index: Optional[Callable[[dict], Iterable[str]]] = None,
                 validate: Check = ANY_RECORD):
        self.name = name
        self._records: Dict[str, dict] = {}
        self._index_fn = index
        self._validate = validate
        self._index: Dict[str, str] = {}
        self._indexed: Dict[str, List[str]] = {}  # key -> the values it is indexed under
        self._memory = threading.Lock()  # over the dicts above; never held across I/O
        self._locks = [threading.RLock() for _ in range(LOCK_STRIPES)]
        self._listeners: List[Listener] = []

    def _lock(self, key: str) -> threading.RLock:
        """The write lock of `key`'s record."""
        return self._locks[hash(key) % LOCK_STRIPES]

    def add_listener(self, callback: Listener) -> None:
        """Call `callback(name, key)` after a record is written or deleted, or found
        changed on disk. It runs in the writer's thread, after the write (outside the
        record's lock): keep it short, never wait for another writer. What it raises is
        logged, never given to the writer."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Listener) -> None:
        """Stop calling `callback` (nothing happens if it was not listening)."""
        if callback in self._listeners:
            self._listeners.remove(callback)

    def _notify(self, keys: Iterable[str]) -> None:
        for key in keys:
            for listener in list(self._listeners):
                try:
                    listener(self.name, key)
                except Exception:
                    LOG.exception(f"a store listener failed on {self.name} {key!r}")

    # subclass hooks ---------------------------------------------------------------
    def _refresh(self) -> None:
        """Pick up changes made to the files by hand."""

    def _persist(self, key: str, record: Optional[dict]) -> None:
        raise NotImplementedError

    def _written(self) -> None:
        """Called after a write, outside the record's lock (housekeeping)."""

    def files(self) -> List[str]:
        """The files the records are kept in (for a backup)."""
        raise NotImplementedError

    def snapshot(self) -> Tuple[Dict[str, bytes], int]:
        """({path: content} of every file, how many records they hold), for a backup
        taken while serving: each record is whole, and every write acknowledged before
        the call is in it."""
        raise NotImplementedError

    # reading ----------------------------------------------------------------------
    def get(self, key: str) -> Optional[dict]:
        record = self.peek(key)
        return clone(record) if record is not None else None

    def peek(self, key: str) -> Optional[dict]:
        """The stored record itself, for read-only use on hot paths: never modify it."""
        self._refresh()
        return self._records.get(key)

    def peek_map(self) -> Mapping[str, dict]:
        """Every stored record by key, checked for hand edits once: a read-only view for
        hot paths that read many records (a device's skills). Never modify them."""
        self._refresh()
        return MappingProxyType(self._records)

    def peek_all(self) -> List[dict]:
        """The stored records themselves, for read-only scans on hot paths (counting the
        waiting pairing codes at each request): never modify them. `all()` copies each."""
        self._refresh()
        return list(self._records.values())

    def find(self, value: str) -> Optional[str]:
        """The key of the record indexed under `value`."""
        self._refresh()
        return self._index.get(value)

    def keys(self) -> List[str]:
        self._refresh()
        return list(self._records)

    def all(self) -> Dict[str, dict]:
        self._refresh()
        return clone(dict(self._records))

    def __len__(self) -> int:
        self._refresh()
        return len(self._records)

    # writing ----------------------------------------------------------------------
    def put(self, key: str, record: dict) -> dict:
        check_storable({key: record})
        with self._lock(key):
            self._store(key, clone(record))
        self._written()
        self._notify([key])
        return record

    def delete(self, key: str) -> bool:
        with self._lock(key):
            if self.peek(key) is None:
                return False
            self._store(key, None)
        self._written()
        self._notify([key])
        return True

    def update(self, key: str, change: Callable[[Optional[dict]], Optional[dict]]) -> Optional[dict]:
        """Read-modify-write one record atomically with respect to other writers.

        `change` receives a copy of the record (None if absent) and returns the new
        record, or None to leave it unchanged.
        """
        with self._lock(key):
            old = self.peek(key)  # only compared: `change` gets the copy
            new = change(clone(old) if old is not None else None)
            changed = new is not None and new != old  # an unchanged record costs no write
            if changed:
                check_storable({key: new})
                self._store(key, clone(new))
        if changed:
            self._written()
            self._notify([key])
        return new

    def _store(self, key: str, record: Optional[dict]) -> None:
        """Write a checked record (None: delete it), then hold it in memory; the caller
        holds the record's lock and hands over a record nobody else holds."""
        self._persist(key, record)
        self._set(key, record)

    # in-memory bookkeeping ----------------------------------------------------------
    def _set(self, key: str, record: Optional[dict]) -> None:
        """Put `record` (None: remove) in memory. The new index values are computed before
        anything changes, and the old ones are those actually indexed, not recomputed from
        the old record: a record the index function chokes on leaves memory as it was."""
        values = list(self._index_fn(record)) if record is not None and self._index_fn else []
        with self._memory:
            for value in self._indexed.pop(key, ()):
                if self._index.get(value) == key:
                    del self._index[value]
            if record is None:
                self._records.pop(key, None)
                return
            self._records[key] = record
            for value in values:
                self._index[value] = key
            if values:
                self._indexed[key] = values


class FileCollection(Collection):
    """A collection kept in one JSON file `{key: record}` (named after the file unless
    `name` is given), the file people edit by hand, with a journal beside it.

    A write appends the record to the journal (`<name>.journal`, JSON Lines of
    `{"key": ..., "record": ... or null}`) and syncs it: it costs one record however big
    the collection. When the journal outgrows the file (or at open), the journal is folded
    into the file (one atomic rewrite) and emptied, so the rewrites cost O(1) per write on
    average; the first write makes the file. Reading at open: the file, then the journal
    over it.

    A hand edit of the file is noticed (a `stat` per read) and the records it changed
    replace those in memory (a record edited by hand wins); the file is then folded again.
    The journal itself is not for editing."""

    def __init__(self, path: str, index=None, name: str = "", validate: Check = ANY_RECORD):
        super().__init__(name or basename(path).rsplit(".", 1)[0], index, validate)
        self.path = path
        self.journal = path.rsplit(".", 1)[0] + ".journal"
        self._signature = None
        self._base: Dict[str, dict] = {}  # what the file holds, as last written or read
        self._file_bytes = 0
        self._log = AppendLog(self.journal, validate=_JOURNAL_LINE)
        self._log.create()  # now, not at the first write: a full disk may refuse it then
        self._folding = Gate()  # appends pass together; a fold closes it
        remove_stale_temp_files(os.path.dirname(path))
        doc = _load_or_restore(path, None, map_of(self._validate), initial=True)
        records = dict(doc) if doc is not None else {}
        for line in self._log.read():  # what was written since the last fold, in order
            if line["record"] is None:
                records.pop(line["key"], None)
            elif self._validate(line["record"]) is None:
                records[line["key"]] = line["record"]
            else:
                LOG.error(f"{self.journal}: skipping a record of {line['key'][:64]!r} that "
                          f"{self._validate(line['record'])}")
        for key, record in records.items():
            self._set(key, record)
        self._base = dict(doc) if doc is not None else {}
        self._signature = _signature(path)
        self._file_bytes = self._signature[1] if self._signature else 0
        if self._log.size():
            try:
                self._fold()
            except StorageError:  # logged; the journal stays, and is folded in later
                pass

    def _store(self, key: str, record: Optional[dict]) -> None:
        # the record reaches memory before a fold can start: a fold writes what memory
        # holds, then empties the journal
        with self._folding.shared():
            super()._store(key, record)

    def files(self) -> List[str]:
        """The file and its journal: a restore opens them as a start does, replaying
        the journal over the file."""
        return [path for path in (self.path, self.journal) if exists(path)]

    def snapshot(self) -> Tuple[Dict[str, bytes], int]:
        # with the gate closed no write is under way (each holds it from its journal
        # line to memory, sync included) and no fold: the file plus the journal's whole
        # lines hold exactly what memory does
        self._refresh()
        with self._folding.closed():
            with self._memory:
                count = len(self._records)
            return {path: _read_bytes(path) for path in self.files()}, count

    def _persist(self, key: str, record: Optional[dict]) -> None:
        self._log.append({"key": key, "record": record})

    def _written(self) -> None:
        if not self._file_bytes or self._log.size() > max(FOLD_BYTES, self._file_bytes):
            if self._folding.close(blocking=False):
                try:
                    self._fold_closed()
                finally:
                    self._folding.open()

    def _fold(self) -> None:
        with self._folding.closed():
            self._fold_closed()

    def _fold_closed(self) -> None:
        """Rewrite the file with every record and empty the journal; the gate is closed."""
        with self._memory:
            records = dict(self._records)
        Document(self.path, records).store()
        self._log.truncate()
        self._base = records
        self._signature = _signature(self.path)
        self._file_bytes = self._signature[1] if self._signature else 0

    def _refresh(self) -> None:
        if _signature(self.path) == self._signature or not self._folding.close(blocking=False):
            return  # unchanged, or being folded or reloaded by another thread right now
        try:
            changed = self._reload() if _signature(self.path) != self._signature else []
        finally:
            self._folding.open()
        self._notify(changed)

    def _reload(self) -> List[str]:
        """Take in a hand edit of the file (the gate is closed); the keys that changed."""
        LOG.info(f"{self.path} changed on disk, reloading")
        with self._memory:
            current = dict(self._records)
        doc = _load_or_restore(self.path, current, map_of(self._validate))
        edited = dict(doc) if doc is not None else {}
        changed = [key for key in edited.keys() | self._base.keys()
                   if edited.get(key) != self._base.get(key) and edited.get(key) != current.get(key)]
        for key in changed:
            self._set(key, edited.get(key))
        self._fold_closed()
        return changed


class DirCollection(Collection):
    """A collection kept as one JSON file per record, so a write costs the same at any size.

    One `stat` of a record's file before serving it notices a hand edit or removal; one
    of the folder before a lookup or a listing notices a file added or removed by hand
    (the folder is then read again, by one thread, while the others go on). The store's
    own writes note the folder's new state, so they cause no rescan (a change by hand
    made while the store writes in the folder may go unseen until the folder changes
    again, as one made in the same clock tick always could)."""

    SUFFIX = ".json"

    def __init__(self, folder: str, index=None, validate: Check = ANY_RECORD):
        super().__init__(basename(folder), index, validate)
        self.folder = folder
        _make_folder(folder)
        remove_stale_temp_files(folder)
        self._signatures: Dict[str, tuple] = {}
        self._dir_signature = None
        self._scanning = threading.Lock()
        self._writers = 0  # writes in progress (under self._memory)
        self._burst_clean = True  # whether the folder was as last seen when they began
        self._scan(initial=True)

    def _path(self, key: str) -> str:
        if not SAFE_KEY.match(key):
            raise BadRequest(f"invalid id: {key[:64]!r}")
        return join(self.folder, key + self.SUFFIX)

    def peek(self, key: str) -> Optional[dict]:
        # one stat, of the record's own file, tells whether it was added, changed or removed
        # since it was read: the folder need not be looked at (each stat on the hot path
        # also hands the GIL to another request, so they are kept few)
        if not SAFE_KEY.match(key):
            return None
        if _signature(self._path(key)) != self._signatures.get(key):
            with self._lock(key):
                changed = self._load(key)
            if changed:
                self._notify([key])
        return self._records.get(key)

    def _scan(self, initial: bool = False) -> List[str]:
        """Read the folder again; the keys whose record changed."""
        signature = _signature(self.folder)  # before listing: a change meanwhile is seen next time
        names = {f[:-len(self.SUFFIX)] for f in self._list()
                 if f.endswith(self.SUFFIX) and SAFE_KEY.match(f[:-len(self.SUFFIX)])}
        changed = []
        for key in set(self._records) - names:
            with self._lock(key):
                if not exists(self._path(key)):
                    self._set(key, None)
                    self._signatures.pop(key, None)
                    changed.append(key)
        for key in names:
            if _signature(self._path(key)) != self._signatures.get(key):
                with self._lock(key):
                    if self._load(key, initial):
                        changed.append(key)
        self._dir_signature = signature
        return changed

    def _list(self) -> List[str]:
        """The folder's file names. A folder removed while serving is made again (empty):
        its records went with it, as with files removed by hand, and writes go on."""
        try:
            return os.listdir(self.folder)
        except FileNotFoundError:
            LOG.error(f"{self.folder} was removed while serving: its records are gone; "
                      "made it again")
            _make_folder(self.folder)
            return []

    def _load(self, key: str, initial: bool = False) -> bool:
        """Read one record's file again if it changed; whether the record did. The
        caller holds the record's lock."""
        path = self._path(key)
        signature = _signature(path)
        if signature is not None and signature == self._signatures.get(key):
            return False
        old = self._records.get(key)
        doc = _load_or_restore(path, None if initial else old, self._validate, initial)
        new = dict(doc) if doc is not None else None
        self._set(key, new)
        if doc is None:
            self._signatures.pop(key, None)
        else:
            self._signatures[key] = _signature(path)
        return new != old

    def _refresh(self) -> None:
        # a folder's mtime changes when a file is added, removed or replaced; one thread
        # reads it again, the others go on with what they have meanwhile. Not while the
        # store writes in it: the change may be its own (the burst's end tells)
        if self._writers or _signature(self.folder) == self._dir_signature \
                or not self._scanning.acquire(False):
            return
        try:
            changed = self._scan() if _signature(self.folder) != self._dir_signature else []
        finally:
            self._scanning.release()
        self._notify(changed)

    def files(self) -> List[str]:
        return [self._path(key) for key in self.keys() if exists(self._path(key))]

    def snapshot(self) -> Tuple[Dict[str, bytes], int]:
        # no lock: each file is replaced whole (written aside, then renamed), and a write
        # is acknowledged after its file is in place and its key in memory
        files = {}
        for path in self.files():
            try:
                files[path] = _read_bytes(path)
            except FileNotFoundError:  # deleted meanwhile
                pass
        return files, len(files)

    def _persist(self, key: str, record: Optional[dict]) -> None:
        path = self._path(key)
        with self._memory:
            if not self._writers:  # a burst of writes begins: was the folder as last seen?
                self._burst_clean = _signature(self.folder) == self._dir_signature
            self._writers += 1
        try:
            self._write_file(key, path, record)
        finally:
            with self._memory:
                self._writers -= 1
                if not self._writers and self._burst_clean:
                    # the folder changed by the burst's writes only: no rescan for them
                    self._dir_signature = _signature(self.folder)

    def _write_file(self, key: str, path: str, record: Optional[dict]) -> None:
        if record is None:
            try:
                os.unlink(path)
                if exists(path + ".bak"):
                    os.unlink(path + ".bak")
                _fsync_dir(self.folder)
            except FileNotFoundError:
                pass
            except OSError as e:
                raise _refused("delete", path, e) from e
            self._signatures.pop(key, None)
        else:
            Document(path, record).store()
            self._signatures[key] = _signature(path)


class AppendLog:
    """Append-only JSON Lines: one record a line, synced before an append returns.

    Appenders wait for each other only to write their line (not for its sync), so
    concurrent appends share their syncs; a rewrite of the whole log waits for them."""

    def __init__(self, path: str, validate: Check = ANY_RECORD):
        self.path = path
        self._validate = validate
        self._lock = threading.Lock()  # one line written at a time (a short write is undone)
        self._gate = Gate()  # appends pass together; a rewrite closes it
        self._repair_tail()

    def _repair_tail(self) -> None:
        """A crash mid-append can leave a partial last line: cut it, keep everything before."""
        if not exists(self.path):
            return
        with open(self.path, "rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                cut = data.rfind(b"\n") + 1
                LOG.warning(f"{self.path}: dropping an unfinished last line ({len(data) - cut} bytes)")
                f.truncate(cut)
                f.flush()
                os.fsync(f.fileno())

    def append(self, record: dict) -> dict:
        self.extend([record])
        return record

    def extend(self, records: List[dict]) -> None:
        """Append records with one write and one sync (an import brings 100,000 at once).
        Like a single record's line, they are written under the lock and synced outside
        it, inside the gate: a rewrite waits for them."""
        for record in records:
            check_storable(record)
        lines = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)
        with self._gate.shared():
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    with self._lock:
                        self._write_whole(fd, lines.encode("utf-8"))
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as e:
                raise _refused("append to", self.path, e) from e

    @staticmethod
    def _write_whole(fd: int, line: bytes) -> None:
        """Write the whole line, or nothing: a full disk can make `write` short, and a
        partial line would be acknowledged, then merged with the next one."""
        end = os.lseek(fd, 0, os.SEEK_END)
        try:
            rest = memoryview(line)
            while rest:
                rest = rest[os.write(fd, rest):]
        except OSError:
            os.ftruncate(fd, end)
            raise

    def create(self) -> None:
        """Make the log (empty, owner-only) unless it exists."""
        if not exists(self.path):
            try:
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
                _fsync_dir(os.path.dirname(self.path))
            except OSError as e:
                raise _refused("create", self.path, e) from e

    def size(self) -> int:
        """Bytes in the log (0 when it does not exist)."""
        try:
            return os.stat(self.path).st_size
        except FileNotFoundError:
            return 0

    def files(self) -> List[str]:
        return [self.path] if exists(self.path) else []

    def snapshot(self) -> Tuple[Dict[str, bytes], int]:
        """({path: content}, records) (see `Collection.snapshot`): read under the lock
        appends write their lines under, so every line is whole, and every acknowledged
        append (written, then synced) is in it."""
        with self._lock:
            files = {path: _read_bytes(path) for path in self.files()}
        return files, sum(len(self._parse(data)) for data in files.values())

    def __len__(self) -> int:
        return len(self.read())

    def read(self) -> List[dict]:
        return self._parse(_read_bytes(self.path)) if exists(self.path) else []

    def _parse(self, data: bytes) -> List[dict]:
        records = []
        for number, line in enumerate(data.splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                LOG.error(f"{self.path}:{number}: skipping a line that is not JSON")
                continue
            reason = self._validate(entry)
            if reason:
                LOG.error(f"{self.path}:{number}: skipping a record that {reason}")
            else:
                records.append(entry)
        return records

    def rewrite(self, records: List[dict]) -> None:
        """Replace the whole log (for the rare edit or delete), atomically."""
        with self._gate.closed():
            self._replace(records)

    def edit(self, change: Callable[[List[dict]], Optional[List[dict]]]) -> None:
        """Read the log, and replace it with `change(records)` (None: leave it), with
        appends held back meanwhile: none can slip in between the read and the rewrite
        and be lost."""
        with self._gate.closed():
            records = change(self.read())
            if records is not None:
                self._replace(records)

    def _replace(self, records: List[dict]) -> None:
        payload = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)
        write_atomic(self.path, payload.encode("utf-8"))

    def truncate(self) -> None:
        """Empty the log (its records were kept elsewhere), durably."""
        if not exists(self.path):
            return
        with self._gate.closed():
            try:
                with open(self.path, "rb+") as f:
                    f.truncate(0)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as e:
                raise _refused("empty", self.path, e) from e


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _time(value) -> Optional[float]:
    """A stored epoch time, or None for anything else (a hand edit may leave text)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class Presence:
    """When each device was last seen (any authenticated request) and last synced its
    skill settings, kept in memory: devices poll every minute, and writing a device's
    file at each poll would cost an fsync per request.

    The times reach the device record (`last_seen`, `settings_synced_at`) when the
    stored ones are `interval` seconds old or absent: a device's file is written at
    most once per interval, and a restart finds them at most that much behind.
    """

    FIELDS = ("last_seen", "settings_synced_at")

    def __init__(self, devices: Collection, interval: float = 600,
                 clock: Callable[[], float] = time.time):
        self._devices = devices
        self.interval = interval
        self._clock = clock
        self._times: Dict[str, Dict[str, float]] = {}
        self._written: Dict[str, float] = {}  # when each device's record last got its times
        self._lock = threading.Lock()

    def seen(self, uuid: str) -> None:
        """The device made an authenticated request."""
        self._note(uuid, "last_seen")

    def synced(self, uuid: str) -> None:
        """The device read its skill settings, or sent some."""
        self._note(uuid, "settings_synced_at")

    def get(self, uuid: str) -> Dict[str, Optional[float]]:
        """{field: epoch seconds or None}: the fresher of memory and the stored record."""
        record = self._devices.peek(uuid) or {}
        with self._lock:
            times = dict(self._times.get(uuid, {}))
        return {field: max(filter(None, (times.get(field), _time(record.get(field)))), default=None)
                for field in self.FIELDS}

    def _note(self, uuid: str, field: str) -> None:
        now = self._clock()
        # first sight: the record itself tells when it last got the times
        stored = None if uuid in self._written else self._stored_time(uuid)
        with self._lock:
            times = self._times.setdefault(uuid, {})
            times[field] = now
            written = self._written.setdefault(uuid, stored or 0.0)
            due = now - written >= self.interval
            if due:
                self._written[uuid] = now
                times = dict(times)
        if due:
            self._write(uuid, times)

    def _stored_time(self, uuid: str) -> float:
        stored = self._devices.peek(uuid) or {}
        return max(filter(None, (_time(stored.get(f)) for f in self.FIELDS)), default=0.0)

    def _write(self, uuid: str, times: Dict[str, float]) -> None:
        def apply(device: Optional[dict]) -> Optional[dict]:
            if device is None:  # forgotten meanwhile
                return None
            fresher = {f: t for f, t in times.items() if t > (_time(device.get(f)) or 0)}
            return {**device, **fresher} if fresher else None

        try:
            self._devices.update(uuid, apply)
        except StorageError as e:  # a full disk must not fail the device's request
            LOG.warning(f"cannot store when device {uuid} was last seen: {e.message}")


# what the code reading each collection relies on, checked when a file is loaded
SKILL_SETTINGS = json_object(skill_id=TEXT, display_name=of_type("text or null", str, type(None)),
                             meta=OBJECT, settings=OBJECT, updated_at=NUMBER)
DEVICE = json_object(
    **dict.fromkeys(("uuid", "name", "device_location", "email", "lang", "system_unit",
                     "date_format", "time_format", "ww_id", "voice_id", "wake_word",
                     "tts_module", "core_version", "enclosure_version", "platform",
                     "platform_build"), TEXT),
    **dict.fromkeys(("opt_in", "isolated_skills"), FLAG),
    **dict.fromkeys(("location", "ww_config", "tts_config", "skills_manifest"), OBJECT),
    **dict.fromkeys(("created_at", "paired_at", "last_seen", "settings_synced_at"), NUMBER),
    tokens=map_of(TEXT), skill_gids=map_of(TEXT), skills=map_of(SKILL_SETTINGS))
PAIRING = json_object(
    ("code", "state", "token_hash", "status", "created_at", "expires_at"),
    **dict.fromkeys(("code", "state", "token_hash", "status", "uuid", "packaging", "address"), TEXT),
    **dict.fromkeys(("created_at", "expires_at", "activated_at", "seen_at"), NUMBER),
    repair=FLAG, device=OBJECT)
METRIC = json_object(**dict.fromkeys(("metric_id", "metric_type", "uuid"), TEXT),
                     timestamp=NUMBER, meta=OBJECT)


def _device_tokens(record: dict) -> Iterable[str]:
    return [h for h in (record.get("tokens") or {}).values() if isinstance(h, str) and h]


LOCK_FILE = ".lock"
RECORDINGS = "recordings"  # audio files the services write (Store.folder)


class FolderInUse(StorageError):
    """Another process serves (or restores, or imports into) the data folder."""

    status = 409


class FolderLock:
    """The claim of one process on a data folder: an exclusive `fcntl.flock` on its lock
    file, which names the holder (pid and what it does). The kernel drops it when the
    process ends, however it ends, so a crash never leaves the folder locked.

    Two servers on one folder each kept their own copy of the data in memory and lost
    each other's writes (31 of 172 acknowledged skill-settings writes in a test), so a
    server, a restore and an import each hold it; a backup only reads and needs none."""

    def __init__(self, data_path: str, holder: str):
        try:
            _make_folder(data_path)
        except OSError as e:
            raise StorageError(f"cannot create data folder {data_path}: {e.strerror or e}") from e
        self.path = join(data_path, LOCK_FILE)
        # the lock is held through a read-only descriptor: a file open for writing would
        # keep the file system from being remounted read-only while serving
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CREAT, 0o600)
        except OSError as e:
            raise StorageError(f"data folder {data_path} is not writable: {e.strerror or e}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise FolderInUse(f"the data folder {data_path} is in use by {other}; stop it "
                              "first (or use the running backend, e.g. the skill's voice "
                              "commands)") from None
        try:
            with open(self.path, "w", encoding="utf-8") as f:
                f.write(f"process {os.getpid()} ({holder})\n")
        except OSError as e:
            os.close(fd)
            raise StorageError(f"data folder {data_path} is not writable: {e.strerror or e}") from e
        self._fd = fd

    def release(self) -> None:
        """Give the folder up (safe to call twice)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the file drops the lock

    def __enter__(self) -> "FolderLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class Store:
    """Every collection the backend keeps, under one data folder."""

    def __init__(self, data_path: str):
        self.path = data_path
        try:
            _make_folder(data_path)
        except OSError as e:
            raise StorageError(f"cannot create data folder {data_path}: {e.strerror or e}") from e
        if not isdir(data_path) or not os.access(data_path, os.W_OK):
            raise StorageError(f"data folder {data_path} is not writable")
        self.devices = DirCollection(join(data_path, "devices"), index=_device_tokens,
                                     validate=DEVICE)
        self.presence = Presence(self.devices)
        self.pairings = DirCollection(join(data_path, "pairings"),
                                      index=lambda r: [r.get("token_hash", "")], validate=PAIRING)
        self.shared_skills = FileCollection(join(data_path, "skill_settings.json"),
                                            name="shared_skills", validate=SKILL_SETTINGS)
        self.metrics = AppendLog(join(data_path, "metrics.jsonl"), validate=METRIC)
        self.oauth_apps = FileCollection(join(data_path, "oauth_apps.json"))  # admin-registered apps
        self.oauth_tokens = FileCollection(join(data_path, "oauth_tokens.json"))  # by token id
        self.oauth_states = DirCollection(join(data_path, "oauth_states"))  # pending authorizations
        self.ww_definitions = FileCollection(join(data_path, "ww_definitions.json"))
        self.voice_definitions = FileCollection(join(data_path, "voice_definitions.json"))
        self.utterances = DirCollection(join(data_path, "utterances"))  # datasets.py
        self.wakewords = DirCollection(join(data_path, "wakewords"))  # datasets.py

    def collections(self) -> Dict[str, object]:
        """Every collection by name: what a backup holds and a restore checks."""
        return {"devices": self.devices, "pairings": self.pairings,
                "shared_skills": self.shared_skills, "metrics": self.metrics,
                "oauth_apps": self.oauth_apps, "oauth_tokens": self.oauth_tokens,
                "oauth_states": self.oauth_states, "ww_definitions": self.ww_definitions,
                "voice_definitions": self.voice_definitions, "utterances": self.utterances,
                "wakewords": self.wakewords}

    def counts(self) -> Dict[str, int]:
        """How many records each collection holds."""
        return {name: len(collection) for name, collection in self.collections().items()}

    def export(self, counts: Optional[Dict[str, int]] = None) -> Iterator[Tuple[str, bytes]]:
        """(path relative to the data folder, content) of every file the store keeps, for
        a backup taken while serving; `counts` is filled with the records each collection's
        files hold. Each collection's `snapshot` holds whole records and every write
        acknowledged before the call (a one-file collection's journal with its file); the
        recordings' audio last, since audio is written before its record: every record read
        has its audio. Leftovers (.bak, temp and refused files) are not data."""
        for name, collection in self.collections().items():
            files, count = collection.snapshot()
            if counts is not None:
                counts[name] = count
            for path, data in sorted(files.items()):
                yield os.path.relpath(path, self.path), data
        recordings = join(self.path, RECORDINGS)
        for root, _, names in sorted(os.walk(recordings)):
            for name in sorted(names):
                if not TEMP_FILE.search(name):
                    path = join(root, name)
                    yield os.path.relpath(path, self.path), _read_bytes(path)

    def add_listener(self, callback: Listener) -> None:
        """Call `callback(collection, key)` after a device record ("devices", uuid) or a
        skill's shared settings ("shared_skills", skill id) is written, deleted or found
        changed on disk (see `Collection.add_listener`)."""
        for collection in (self.devices, self.shared_skills):
            collection.add_listener(callback)

    def remove_listener(self, callback: Listener) -> None:
        for collection in (self.devices, self.shared_skills):
            collection.remove_listener(callback)

    def folder(self, *parts: str) -> str:
        """A sub-folder of the data path for files the services write (recordings)."""
        path = join(self.path, *parts)
        _make_folder(path)
        return path
