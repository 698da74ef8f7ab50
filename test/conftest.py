"""Test isolation: every XDG path points into a temp folder before any OVOS import.

ovos-config and ovos-backend-client compute their paths at import time (the identity
file path, for one), so this must run before any test module imports them.
"""
import json
import os
import shutil
import socket
import sys
import tempfile
import time

SANDBOX = tempfile.mkdtemp(prefix="pb-test-")
for var, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data"),
                 ("XDG_CACHE_HOME", "cache"), ("XDG_STATE_HOME", "state"),
                 ("XDG_CONFIG_DIRS", "xdg-dirs"), ("XDG_DATA_DIRS", "xdg-data-dirs")):
    os.environ[var] = os.path.join(SANDBOX, sub)
    os.makedirs(os.environ[var], exist_ok=True)
os.environ["MYCROFT_SYSTEM_CONFIG"] = os.path.join(SANDBOX, "system", "mycroft.conf")
os.environ["OVOS_DISTRIBUTION_CONFIG"] = os.path.join(SANDBOX, "distribution", "mycroft.conf")
# OVOS logs from WARNING up (OVOS_DEFAULT_LOG_LEVEL=INFO shows more): passing tests print nothing,
# not even the INFO lines skills log at interpreter exit, outside pytest's capture, and a failing
# test's report keeps its warnings and errors. ovos-core sets the level from mycroft.conf's
# log_level when imported, hence the sandbox's distribution config; the variable covers the rest.
LOG_LEVEL = os.environ.setdefault("OVOS_DEFAULT_LOG_LEVEL", "WARNING")
os.makedirs(os.path.dirname(os.environ["OVOS_DISTRIBUTION_CONFIG"]))
with open(os.environ["OVOS_DISTRIBUTION_CONFIG"], "w") as f:
    json.dump({"log_level": LOG_LEVEL}, f)
os.environ["HOME"] = os.path.join(SANDBOX, "home")
os.makedirs(os.environ["HOME"], exist_ok=True)
tempfile.tempdir = os.path.join(SANDBOX, "tmp")  # the client's identity lock lives there
os.makedirs(tempfile.tempdir, exist_ok=True)
sys.path.insert(0, os.path.dirname(__file__))

import pytest  # noqa: E402

from ovos_skill_personal_backend.backend import config as backend_config  # noqa: E402
from ovos_skill_personal_backend.backend import create_app  # noqa: E402
from ovos_skill_personal_backend.backend.server import BackendServer  # noqa: E402
from ovos_skill_personal_backend.backend.store import Store  # noqa: E402

ADMIN_KEY = "test-admin-key-0123456789"


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(SANDBOX, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float = 10) -> bool:
    """Poll `predicate` until it holds; False if it never did within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def make_config(data_path, **server) -> dict:
    overrides = {"data_path": str(data_path),
                 "server": {"admin_key": ADMIN_KEY, "port": 0, **server}}
    return backend_config.load(os.path.join(SANDBOX, "no-such.conf"), overrides)


@pytest.fixture
def config(tmp_path):
    return make_config(tmp_path / "data")


@pytest.fixture
def store(config):
    return Store(config["data_path"])


@pytest.fixture
def app(config, store):
    return create_app(config, store)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def live_server(app, config):
    """The real waitress server on an ephemeral 127.0.0.1 port."""
    server = BackendServer(app, "127.0.0.1", 0).start()
    yield server
    server.stop()
