"""Shared test helpers: drive the REAL ovos-backend-client against a running server.

ovos-backend-client keeps the device identity in a process-wide singleton,
`IdentityManager`, backed by one file (identity2.json). Tests that need several
devices, or the admin client (whose `admin_pair` overwrites the caller's identity),
give each party its own identity file; `identity_file()` points the singleton at one
for a block and puts it back afterwards.
"""
import contextlib
import json
import os
import threading
import uuid as uuidlib
from collections import Counter
from typing import Iterator, List, Optional

import pytest
import requests
from ovos_backend_client.api import AdminApi, DatabaseApi
from ovos_backend_client.backends.personal import PersonalBackend
from ovos_backend_client.backends import BackendType
from ovos_backend_client.identity import IdentityManager
from ovos_backend_client.pairing import PairingManager

from conftest import ADMIN_KEY
from server_process import ServerProcess, raw_pair  # noqa: F401 (tests import them from here)
from ovos_skill_personal_backend.backend import create_app
from ovos_skill_personal_backend.backend.server import BackendServer
from ovos_skill_personal_backend.backend.store import Store


@contextlib.contextmanager
def serve(config: dict, store: Optional[Store] = None) -> Iterator[BackendServer]:
    """A real waitress server for `config` (e.g. confirm pairing, a small body limit)."""
    store = store or Store(config["data_path"])
    server = BackendServer(create_app(config, store), "127.0.0.1", 0,
                           max_body_bytes=config["server"]["max_body_mb"] * 1024 * 1024).start()
    try:
        yield server
    finally:
        server.stop()


# where the client keeps a device's identity unless told otherwise (inside the sandbox)
DEFAULT_IDENTITY_FILE = IdentityManager.IDENTITY_FILE


@pytest.fixture
def restore_identity():
    """Put the client's identity singleton back on the default (empty) file after a test.

    `PersonalBackend(identity_file=...)` repoints the process-wide IdentityManager and
    leaves it there; modules import this fixture and apply it with `pytestmark`.
    """
    yield
    if os.path.exists(DEFAULT_IDENTITY_FILE):
        os.unlink(DEFAULT_IDENTITY_FILE)
    IdentityManager.set_identity_file(DEFAULT_IDENTITY_FILE)


@contextlib.contextmanager
def identity_file(path) -> Iterator[str]:
    """Point the client's IdentityManager at `path` for the block (it loads it now)."""
    previous = IdentityManager.IDENTITY_FILE
    IdentityManager.set_identity_file(str(path))
    try:
        yield str(path)
    finally:
        IdentityManager.set_identity_file(previous)


def read_identity(path) -> dict:
    with open(path) as f:
        return json.load(f)


def device_backend(url: str, path) -> PersonalBackend:
    """The client a device with identity file `path` uses (every call re-reads that file)."""
    return PersonalBackend(url, identity_file=str(path))


def pair(url: str, path, state: Optional[str] = None, **report) -> PersonalBackend:
    """Pair a new device the way PairingManager does: get a code, activate, save the login.

    Needs a server in "auto" pairing mode (or a code approved in between; see
    `request_code` / `activate` for the two halves).
    """
    backend = device_backend(url, path)
    data = request_code(backend, state)
    login = activate(backend, data, **report)
    assert login and login.get("accessToken"), login
    return backend


@contextlib.contextmanager
def pairing_manager(identity_file, url: Optional[str] = None):
    """ovos-backend-client's own PairingManager, started, polling every 50 ms; with no
    `url` it takes everything from mycroft.conf, as on a device. Yields (manager, code
    shown, paired) and shuts it down afterwards."""
    shown, paired = threading.Event(), threading.Event()
    options = {"api_url": url, "version": "v1", "backend_type": BackendType.PERSONAL} if url else {}
    manager = PairingManager(identity_file=str(identity_file), code_callback=lambda code: shown.set(),
                             success_callback=paired.set, **options)
    manager.poll_frequency = 0.05
    try:
        manager.kickoff_pairing()
        yield manager, shown, paired
    finally:
        manager.shutdown()


def request_code(backend: PersonalBackend, state: Optional[str] = None) -> dict:
    state = state or str(uuidlib.uuid4())
    data = backend.device_get_code(state)
    assert data["state"] == state, data
    return data


def activate(backend: PersonalBackend, data: dict, **report) -> dict:
    """`device_activate` with the issued code, then `IdentityManager.save` as PairingManager does."""
    login = backend.device_activate(data["state"], data["token"], **report)
    with identity_file(backend._identity_file):
        IdentityManager.save(login)
    return login


def admin_api(url: str) -> AdminApi:
    return AdminApi(ADMIN_KEY, url=url)


def admin_backend(url: str) -> PersonalBackend:
    """The backend object under AdminApi: its `admin_set_device_*` return the response,
    where AdminApi's wrappers drop it (they return None)."""
    return admin_api(url).backend


def database_api(url: str) -> DatabaseApi:
    return DatabaseApi(ADMIN_KEY, url=url)


def admin_headers(key: str = ADMIN_KEY) -> dict:
    return {"Authorization": f"Bearer {key}"}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def is_truthy_json(response: requests.Response) -> bool:
    """What the client's pairing check (`bool(device_get())`) would make of a body."""
    try:
        return bool(response.json())
    except ValueError:
        return False


def data_files(folder) -> List[str]:
    return [os.path.join(root, name) for root, _, names in os.walk(folder) for name in names]


def assert_json_files_parse(folder) -> int:
    """Every .json / .jsonl data file parses; returns how many were checked."""
    checked = 0
    for path in data_files(folder):
        if path.endswith(".json"):
            with open(path, encoding="utf-8") as f:
                json.load(f)
        elif path.endswith(".jsonl"):
            with open(path, encoding="utf-8") as f:
                for line in f:
                    json.loads(line)
        else:
            continue
        checked += 1
    return checked


# mixed writes for the load and crash tests ------------------------------------------

LOAD_SKILLS = [f"skill-load-{n}.test" for n in range(4)]


def write_kind(i: int) -> str:
    """The mix, interleaved: 60 % metrics, 30 % skill settings, 10 % pairings."""
    slot = i % 10
    return "pairing" if slot == 9 else "setting" if slot in (2, 5, 7) else "metric"


class Writer(threading.Thread):
    """One paired, opted-in device writing over HTTP; keeps what the server acknowledged.

    Metrics go to the append log; settings PUTs are read-modify-writes of one record
    per skill shared by every writer (contended); pairings create new device files.
    Runs `writes` writes, or until `stop` is set.
    """

    def __init__(self, url: str, tag: str, login: dict, writes: Optional[int] = None,
                 stop: Optional[threading.Event] = None):
        super().__init__(name=f"writer-{tag}", daemon=True)
        self.url, self.tag, self.login, self.writes, self.stop = url, tag, login, writes, stop
        self.acked = {"metric": [], "setting": [], "pairing": []}
        self.failures: List[str] = []

    def _done(self, i: int) -> bool:
        return (self.writes is not None and i >= self.writes) or bool(self.stop and self.stop.is_set())

    def run(self) -> None:
        session = requests.Session()
        session.headers.update(bearer(self.login["accessToken"]))
        device = f"{self.url}/v1/device/{self.login['uuid']}"
        i = 0
        while not self._done(i):
            kind = write_kind(i)
            try:
                result = getattr(self, f"_{kind}")(session, device, i)
            except (requests.RequestException, ValueError, KeyError) as e:
                self.failures.append(f"{kind} {i}: {e!r}"[:300])
                result = None
            if result is not None:
                self.acked[kind].append(result)
            i += 1

    def _metric(self, session, device, i):
        answer = session.post(f"{device}/metric/load_test", json={"writer": self.tag, "seq": i}, timeout=60)
        if answer.status_code != 200 or answer.json().get("saved") is not True:
            raise ValueError(f"HTTP {answer.status_code} {answer.text[:200]}")
        return self.tag, i

    def _setting(self, session, device, i):
        skill, name = LOAD_SKILLS[i % len(LOAD_SKILLS)], f"{self.tag}_{i}"
        meta = {"sections": [{"name": "Load", "fields": [{"name": name, "type": "text", "value": f"v{i}"}]}]}
        answer = session.put(f"{device}/skill", timeout=60, json={
            "skill_gid": f"@{self.login['uuid']}|{skill}", "skillMetadata": meta})
        if answer.status_code != 200:
            raise ValueError(f"HTTP {answer.status_code} {answer.text[:200]}")
        return skill, name, f"v{i}"

    def _pairing(self, session, device, i):
        state = str(uuidlib.uuid4())
        code = requests.get(f"{self.url}/v1/device/code", params={"state": state}, timeout=60)
        answer = requests.post(f"{self.url}/v1/device/activate", timeout=60,
                               json={"state": state, "token": code.json()["token"]})
        if answer.status_code != 200:
            raise ValueError(f"HTTP {answer.status_code} {answer.text[:200]}")
        return answer.json()


def read_jsonl(path) -> List[dict]:
    """A JSON Lines file as records (without the store's repair: read-only)."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def lost_writes(url: str, data_path, writers: List[Writer]) -> Counter:
    """How many acknowledged writes cannot be read back, by kind (the server at `url`
    serving `data_path`): metrics from the log, settings and pairings over HTTP.

    Settings are read as stored (the writers share them), from the admin API: a device is
    only sent the values its skill's latest settingsmeta has fields for, and each write
    here uploads a settingsmeta of one field."""
    stored = {(m["meta"]["writer"], m["meta"]["seq"]) for m in read_jsonl(os.path.join(data_path, "metrics.jsonl"))
              if m.get("metric_type") == "load_test"}
    lost = Counter(metric=0, setting=0, pairing=0)
    session = requests.Session()
    settings = {skill: session.get(f"{url}/v1/admin/skill_settings/{skill}", headers=admin_headers(),
                                   timeout=60).json().get("settings", {}) for skill in LOAD_SKILLS}
    for w in writers:
        lost["metric"] += sum(1 for key in w.acked["metric"] if key not in stored)
        lost["setting"] += sum(settings[skill].get(name) != value for skill, name, value in w.acked["setting"])
        for login in w.acked["pairing"]:
            answer = session.get(f"{url}/v1/device/{login['uuid']}", headers=bearer(login["accessToken"]),
                                 timeout=60)
            lost["pairing"] += answer.status_code != 200
    return lost


def acked_counts(writers: List[Writer]) -> Counter:
    return Counter({kind: sum(len(w.acked[kind]) for w in writers) for kind in ("metric", "setting", "pairing")})


def opt_in(url: str, uuid: str) -> None:
    answer = requests.put(f"{url}/v1/admin/{uuid}/device", json={"opt_in": True},
                          headers=admin_headers(), timeout=30)
    answer.raise_for_status()
