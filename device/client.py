"""A device that uses a personal backend running elsewhere (the skill's client mode).

Joining is the Selene code pairing every Mycroft/OVOS device knows, over plain HTTP
(`PairingSession`): a code the owner approves on the device running the backend, then a
login written as identity2.json. From then on a `Link` keeps the device in sync over
HTTP and copes with the network: a backend that is gone is looked for again (also at a
new address or port, found by DNS-SD and recognised by accepting this device's token),
and one that forgot the device (401) ends the link.
"""
import os
import re
import threading
import uuid as uuidlib
from typing import Callable, Iterable, List, Optional

import requests
from ovos_utils.log import LOG

from . import discovery, identity, remote_config
from .agent import SyncAgent
from .state import StateFile
from .transports import HttpTransport, Revoked, SyncError, Unreachable

DEFAULT_PORT = 6712
PAIRING_POLL = 1.0  # seconds between activation attempts while the owner decides
PAIRING_GIVE_UP = 20 * 60  # the owner did not answer: stop asking
HTTP_TIMEOUT = 10
ASIDE = ".before-personal-backend"  # a device file replaced while connected, kept here
SPOKEN_DOT = re.compile(r"\s*\b(dot|point)\b\s*")


def backend_url(text: str) -> str:
    """A URL from what the owner typed or said: "192.168.1.20", "192 dot 168 dot 1 dot 20
    port 8080", "http://host:6712/"; "" when it holds no host."""
    text = SPOKEN_DOT.sub(".", text.strip().lower())
    text = re.sub(r"\s*(port|colon)\s*", ":", text).replace(" ", "")
    if not text:
        return ""
    if "://" not in text:
        text = f"http://{text}"
    scheme, rest = text.split("://", 1)
    host_port = rest.split("/", 1)[0]
    if not host_port or host_port.startswith(":"):
        return ""
    if ":" not in host_port:
        host_port = f"{host_port}:{DEFAULT_PORT}"
    return f"{scheme}://{host_port}"


# pairing -------------------------------------------------------------------------------

class PairingFailed(Exception):
    """The backend gave no pairing code; the message says why."""


class PairingSession(threading.Thread):
    """`request_code()` asks `url` for a pairing code (the caller says it); the thread
    then tries to activate until the owner approves (`on_paired(login)`) or it gives up
    (`on_failed(reason)`)."""

    def __init__(self, url: str, version: str, on_paired: Callable[[dict], None],
                 on_failed: Callable[[str], None], poll: float = PAIRING_POLL,
                 give_up: float = PAIRING_GIVE_UP):
        super().__init__(daemon=True, name="backend-pairing")
        self.api = f"{url.rstrip('/')}/{version}"
        self.on_paired, self.on_failed = on_paired, on_failed
        self.poll, self.give_up = poll, give_up
        self.state = str(uuidlib.uuid4())
        self.token = ""
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        self._cancelled.set()

    def request_code(self) -> str:
        """A pairing code for this session; PairingFailed if the backend gives none."""
        try:
            answer = requests.get(f"{self.api}/device/code", params={"state": self.state},
                                  timeout=HTTP_TIMEOUT)
            answer.raise_for_status()
            data = answer.json()
            self.token = str(data["token"])
            return str(data["code"])
        except (requests.RequestException, ValueError, KeyError, TypeError) as e:
            raise PairingFailed(f"no pairing code from {self.api}: {e.__class__.__name__}") from e

    def run(self) -> None:
        waited = 0.0
        while not self._cancelled.wait(self.poll):
            login = self._activate(self.state, self.token)
            if login is not None:
                self.on_paired(login)
                return
            waited += self.poll
            if waited > self.give_up:
                self.on_failed("the owner did not approve the code in time")
                return

    def _activate(self, state: str, token: str) -> Optional[dict]:
        """The login once approved; None while waiting (a plain-text 403, or no answer)."""
        try:
            answer = requests.post(f"{self.api}/device/activate", timeout=HTTP_TIMEOUT,
                                   json={"state": state, "token": token,
                                         "platform": "ovos-skill-personal-backend"})
        except requests.RequestException:
            return None
        if answer.status_code != 200:
            return None
        try:
            login = answer.json()
        except ValueError:
            return None
        return login if isinstance(login, dict) and login.get("accessToken") else None


# device files replaced while connected -------------------------------------------------

def client_files() -> List[str]:
    """The files a connection writes: identity2.json and the remote configuration layer."""
    return [identity.identity_path(), remote_config.web_cache_path()]


def set_aside(paths: Iterable[str]) -> None:
    """Keep the current version of each file (if any) for `put_back`."""
    for path in paths:
        if os.path.exists(path) and not os.path.exists(path + ASIDE):
            os.replace(path, path + ASIDE)


def put_back(paths: Iterable[str]) -> None:
    """Undo `set_aside`: each file as it was, or gone if there was none."""
    for path in paths:
        if os.path.exists(path + ASIDE):
            os.replace(path + ASIDE, path)
        elif os.path.exists(path):
            os.remove(path)


# staying in sync -----------------------------------------------------------------------

def accepts(url: str, version: str, uuid: str, token: str) -> bool:
    """True if the backend at `url` knows this device (answers its settings to its token)."""
    transport = HttpTransport(url, version, uuid, token, timeout=3)
    try:
        transport.device_settings()
        return True
    except SyncError:
        return False
    finally:
        transport.close()


class Link:
    """This device kept in sync with the backend at `url` by the agent over HTTP.

    `on_revoked()` is called (in the agent's thread, which then ends) when the backend
    refuses the device's token; `on_moved(url)` when the backend was found again at
    another address or port. A backend announcing itself on the network (back, or
    restarted elsewhere) wakes the agent at once instead of at its next poll."""

    def __init__(self, url: str, version: str, bus, state: StateFile, skip: Iterable[str],
                 on_revoked: Callable[[], None], on_moved: Callable[[str], None],
                 poll_interval: float = 30.0):
        self.version = version
        self.identity = identity.load()
        self.on_revoked, self.on_moved = on_revoked, on_moved
        self.revoked = False
        self.agent = SyncAgent(self._transport(url), bus, state, self.identity.uuid, skip,
                               poll_interval, on_error=self._on_error)
        self.watcher = discovery.Watcher(on_change=self.agent.wake)

    def _transport(self, url: str) -> HttpTransport:
        return HttpTransport(url, self.version, self.identity.uuid, self.identity.access)

    @property
    def url(self) -> str:
        return self.agent.transport.url

    @property
    def reachable(self) -> bool:
        return self.agent.failures == 0 and bool(self.agent.last_sync)

    def start(self) -> "Link":
        self.agent.start()
        try:
            self.watcher.start()
        except OSError as e:  # no multicast here: the agent still polls the known URL
            LOG.warning(f"cannot watch the network for the backend: {e}")
        return self

    def stop(self) -> None:
        self.watcher.stop()
        self.agent.stop()

    def _on_error(self, error: SyncError) -> None:
        if isinstance(error, Revoked):
            self.revoked = True
            LOG.warning(f"the backend at {self.url} forgot this device; sync stopped")
            self.watcher.stop()
            self.agent.stop()
            self.on_revoked()
        elif isinstance(error, Unreachable):
            moved = self._relocate()
            if moved:
                LOG.info(f"the backend moved to {moved}; syncing with it there")
                self.agent.transport.close()
                self.agent.transport = self._transport(moved)
                self.on_moved(moved)
                self.agent.wake()  # sync there now, not after the back-off

    def _relocate(self) -> str:
        """The URL of this device's backend if it now answers elsewhere ("" if not found)."""
        for backend in self.watcher.found():
            if backend.url != self.url and accepts(backend.url, backend.version,
                                                   self.identity.uuid, self.identity.access):
                return backend.url
        return ""
