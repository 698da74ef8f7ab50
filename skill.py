"""The skill: runs the personal backend inside the device and lets its owner administer it.

`initialize()` starts the backend's HTTP server in a thread and points the device at
it; `shutdown()` stops it. Every voice intent calls the same domain functions as the
HTTP API (backend/devices.py, backend/pairing.py), so a change made by voice is checked
exactly like one made over HTTP. Device-side files (mycroft.conf, identity2.json) are
handled by device/mycroft_conf.py; device/ also holds the sync agent.
"""
import errno
import functools
import socket
import threading
import time
from os.path import join
from typing import List, Optional
from urllib.parse import urlparse

from ovos_bus_client.message import Message
from ovos_number_parser import extract_number
from ovos_utils import classproperty
from ovos_utils.log import LOG
from ovos_utils.process_utils import RuntimeRequirements
from ovos_workshop.decorators import intent_handler
from ovos_workshop.skills import OVOSSkill

from .backend import config as config_module
from .backend import backup, create_app, devices, legacy_import, pairing, reconfigure, service
from .backend.errors import BackendError
from .backend.server import BackendServer
from .backend.services import places
from .backend.store import FolderLock, Store
from .device import client, discovery
from .device.agent import SyncAgent
from .device.state import StateFile
from .device.transports import LocalTransport, SyncError
from .device import mycroft_conf as device_config
from .device.mycroft_conf import DeviceConfigError

# Skill settings (described for UIs in settingsmeta.yaml). Empty strings mean "use the
# backend's config file or default" (~/.config/ovos_backend/ovos_backend.conf).
DEFAULTS = {
    "host": "127.0.0.1",
    "port": 6712,
    "admin_key": "",
    "pairing": "",  # "auto", "confirm"; "" = auto on loopback, confirm on the network
    "data_path": "",
    "point_device_here": True,
    "private_speech": False,  # this device's speech through the backend (stock plugins)
    "backup_days": 7,  # automatic daily backups are kept this many days
    "backup_folder": "",  # "" = beside the data folder (<data folder>-backups)
    "mode": "server",  # "client": run no backend here, join one elsewhere
    "backend_url": "",  # client mode: the backend to join ("" = find it on the network)
    "backend_name": "",  # server mode: the name clients hear ("" = this machine's name)
}
SERVER_SETTINGS = ("host", "port", "admin_key", "pairing", "data_path", "backend_name")
# Internal state, kept in the skill's own state file (device/state.py), never in
# settings.json (older versions kept it there: it is moved out at load):
#   _previous_config  mycroft.conf values replaced when pointing the device here
#   _pointed_url      the URL the skill wrote, so a later port change may replace it
#   _device_uuid      the device this skill paired ("this device")
#   _other_backend    the foreign server URL the owner was already told about
#   _speech_previous  mycroft.conf speech values replaced by "keep my voice private"
#   _client_url       client mode: the backend this device joined (and its API version
#   _client_version   in `_client_version`)
#   _client_aside     client mode: identity2.json and web_cache.json were set aside
#   skills, manifest  the sync agent's bookkeeping (device/agent.py)
STATE_KEYS = ("_previous_config", "_pointed_url", "_device_uuid", "_other_backend",
              "_speech_previous")
# client mode: how often the agent asks the backend elsewhere (a 304 when nothing changed)
CLIENT_POLL_SECONDS = 10.0
# how often the agent looks for settings edited on the device when nothing woke it
LOCAL_POLL_SECONDS = 10.0
BACKUP_EVERY = 24 * 3600  # seconds between automatic backups

MAX_CHOICES = 3
# the backend-wide recording switches, by the word (.voc) that names each one
RECORDING_SWITCHES = {"wakewords": "record_wakewords", "utterances": "record_utterances"}


def admin_action(handler):
    """Intent handler guard: needs the device store, and turns the domain's refusals
    into speech instead of a skill error."""
    @functools.wraps(handler)
    def wrapper(self, message):
        if self.store is None:
            self.speak_dialog("ask.server.device" if self.client_mode else "backend.not.running")
            return
        try:
            handler(self, message)
        except DeviceConfigError as e:
            LOG.error(str(e))
            self.speak_dialog("config.broken")
        except BackendError as e:
            self.speak_dialog("request.refused", {"reason": e.message})
    return wrapper


def spell(code: str) -> str:
    """A pairing code as TTS should read it: letter by letter."""
    return " ".join(code)


def heard_code(text: str, lang: str = "en-us") -> str:
    """A pairing code from a transcription: "a c e three four 7" -> "ACE347", and in
    German "a c e drei vier sieben". A word of one character is a letter or a digit as
    it stands; a longer one that the language's number parser reads as one digit is that
    digit ("zéro", "drei"), else its letters are kept."""
    return "".join(_heard_char(word, lang) for word in text.lower().split()).upper()


def _heard_char(word: str, lang: str) -> str:
    if len(word) > 1:
        number = extract_number(word, lang=lang)
        if number is not None and number is not False and number in range(10):
            return str(int(number))
    return "".join(ch for ch in word if ch.isalnum())


def pick(options: List[str], answer: str, lang: str,
         position: Optional[int] = None) -> Optional[str]:
    """The option the user chose: at `position` when the skill recognised an ordinal
    word of the language ("la segunda", "the last one"); else by a word only some
    options contain ("Texas", "the one in France"); else by a number the language's
    parser reads ("two"). Ordinals come first: "de tweede" is not the one with "de"."""
    if position is not None and 1 <= position <= len(options):
        return options[position - 1]
    answer_words = set(places.normalize(answer).split())
    option_words = [set(places.normalize(o).split()) for o in options]
    common = set.intersection(*option_words)
    scores = [len((words - common) & answer_words) for words in option_words]
    best = max(scores)
    if best and scores.count(best) == 1:
        return options[scores.index(best)]
    number = extract_number(answer, ordinals=True, lang=lang)
    if number and int(number) == number and 1 <= number <= len(options):
        return options[int(number) - 1]
    return None


class PersonalBackendSkill(OVOSSkill):
    """The personal backend, served from the device, administered by voice."""

    def __init__(self, *args, **kwargs):
        # set before super().__init__(), which runs initialize(); shutdown() may be
        # called after a half-finished initialize() and must find these
        self.server: Optional[BackendServer] = None
        self.store: Optional[Store] = None
        self.backend_config: Optional[dict] = None
        self._running_settings: Optional[dict] = None
        self.state: Optional[StateFile] = None
        self.agent: Optional[SyncAgent] = None
        self._folder_lock: Optional[FolderLock] = None
        self.advertiser: Optional[discovery.Advertiser] = None
        self.link: Optional[client.Link] = None  # client mode: synced with a backend elsewhere
        self.joining: Optional[client.PairingSession] = None
        self._lock = threading.RLock()
        self._default_shutdown_done = False
        super().__init__(*args, **kwargs)

    @classproperty
    def runtime_requirements(self) -> RuntimeRequirements:
        """Everything is local: load and answer without internet or even a network."""
        return RuntimeRequirements(internet_before_load=False, network_before_load=False,
                                   requires_internet=False, requires_network=False,
                                   no_internet_fallback=True, no_network_fallback=True)

    # lifecycle -----------------------------------------------------------------------

    def initialize(self):
        # skip_empty=False: "" and 0 are meaningful defaults here
        self.settings.merge(DEFAULTS, new_only=True, skip_empty=False)
        self.state = StateFile(join(self.file_system.path, "state.json"))
        if self.state.adopt(self.settings, STATE_KEYS):
            self.settings.store()
        try:
            with self._lock:
                self._apply_settings()
        except Exception:
            # the loader only runs default_shutdown() after a failed initialize():
            # free the port here or it stays taken until the process exits
            self.shutdown()
            raise
        self.settings_change_callback = self.on_settings_changed
        # ovos-core says when a skill's settings.json changed: upload at once
        self.add_event("ovos.skills.settings_changed", self._wake_sync, speak_errors=False)
        self.schedule_repeating_event(self._automatic_backup, None, BACKUP_EVERY,
                                      name="automatic.backup")
        self._offer_legacy_import_once()

    def shutdown(self):
        """Stop serving and free the port, stop syncing and joining; safe to call any
        number of times."""
        with self._lock:
            server, self.server = self.server, None
            agent, self.agent = self.agent, None
            folder_lock, self._folder_lock = self._folder_lock, None
            advertiser, self.advertiser = self.advertiser, None
            joining, self.joining = self.joining, None
            link, self.link = self.link, None  # its agent is `agent`
            self._running_settings = None
        if joining is not None:
            joining.cancel()
        if link is not None:
            link.stop()
        elif agent is not None:
            agent.stop()
        if advertiser is not None:
            advertiser.stop()
        if server is not None:
            server.stop()
        if folder_lock is not None:
            folder_lock.release()

    def default_shutdown(self):
        """ovos-workshop's shutdown, once. The loader runs it when it unloads the skill, and
        OVOSSkill.__del__ runs it again whenever the garbage collector gets to the old instance,
        which then stores its settings over the settings.json written since (by the owner or a
        newer instance of the skill): the next settings change would bring back its old port."""
        if self._default_shutdown_done:
            return
        self._default_shutdown_done = True
        super().default_shutdown()

    def on_settings_changed(self):
        """Apply edited settings, without a restart of ovos-core."""
        with self._lock:
            self._apply_settings()

    @property
    def client_mode(self) -> bool:
        return self.settings.get("mode") == "client"

    def _apply_settings(self) -> None:
        """Server mode: (re)start the server if its settings changed, then point the device
        here or restore its previous configuration. Client mode: no server; keep in sync
        with the backend this device joined, if any."""
        if self.client_mode:
            if self.server is not None:  # leaving server mode
                self.shutdown()
            if not self.state.get("_client_aside"):
                self._restore_device()  # never joined: undo pointing at the server it ran
            self._start_link()
        else:
            # a server that did not start (busy port) is retried on any settings save
            if self.server is None or self._server_settings() != self._running_settings:
                self.shutdown()
                self._start_backend()
            self._sync_device_pointing()
            self._start_sync()
        self._sync_private_speech()

    def _server_settings(self) -> dict:
        return {key: self.settings.get(key, DEFAULTS[key]) for key in SERVER_SETTINGS}

    def _start_backend(self) -> None:
        """Open the store and serve it. Errors the owner can fix (a setting, a busy
        port) are logged and spoken and leave the skill loaded; others propagate."""
        settings = self._server_settings()
        self._running_settings = settings
        try:
            server_overrides = {"host": str(settings["host"]), "port": int(settings["port"])}
            for key in ("admin_key", "pairing"):
                if settings[key]:
                    server_overrides[key] = settings[key]
            overrides = {"server": server_overrides}
            if settings["data_path"]:
                overrides["data_path"] = settings["data_path"]
            config = config_module.load(overrides=overrides)
            # one server per data folder (FolderInUse names the one serving it)
            folder_lock = FolderLock(config["data_path"], "the personal backend skill")
            try:
                store = Store(config["data_path"])
            except BackendError:
                folder_lock.release()  # a later settings change may try again
                raise
        except (ValueError, BackendError) as e:  # ConfigError is a ValueError
            self._report_failure(getattr(e, "message", None) or str(e))
            return
        self.backend_config, self.store, self._folder_lock = config, store, folder_lock
        app = create_app(config, store, on_pairing_requested=self.announce_pairing)
        server = BackendServer(app, config["server"]["host"], config["server"]["port"],
                               max_body_bytes=config["server"]["max_body_mb"] * 1024 * 1024)
        try:
            server.start()
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                LOG.error(f"personal backend not started: port {server.requested_port} "
                          "is already in use; change the port in the skill settings")
                # most likely the old backend this one replaces: say how to stop it
                busy = "legacy.port.busy" if self._old_backend_found() else "port.busy"
                self.speak_dialog(busy, {"port": server.requested_port})
            else:
                self._report_failure(e.strerror or str(e))
            return
        config["server"]["port"] = server.port  # the bound one, when asked for port 0
        self.server = server
        self.advertiser = discovery.Advertiser(
            server.host, server.port, config["server"]["version"], config["server"]["pairing"],
            str(self.settings.get("backend_name") or "") or socket.gethostname()).start()

    def _report_failure(self, reason: str) -> None:
        LOG.error(f"personal backend not started: {reason}")
        self.speak_dialog("backend.failed", {"reason": reason})

    # keeping this device in sync ------------------------------------------------------

    def _start_sync(self) -> None:
        """Run the sync agent while this device is paired to the backend served here
        (and stop it otherwise): OVOS no longer fetches its settings by itself."""
        uuid = None
        if self.server is not None and self._points_here() and device_config.is_paired(self.store):
            uuid = device_config.identity().uuid
        if self.agent is not None and (uuid is None or self.agent.uuid != uuid):
            self.agent.stop()
            self.agent = None
        if uuid is not None and self.agent is None:
            transport = LocalTransport(self.store, uuid, self.backend_config["quotas"],
                                       base_url=self.local_url)
            self.agent = SyncAgent(transport, self.bus, self.state, uuid, skip={self.skill_id},
                                   poll_interval=LOCAL_POLL_SECONDS).start()
            LOG.info(f"keeping this device ({uuid}) in sync with its backend")

    def _wake_sync(self, message=None) -> None:
        agent = self.agent
        if agent is not None:
            agent.wake()

    @property
    def local_url(self) -> str:
        """The URL this device uses to reach its own backend."""
        return f"http://127.0.0.1:{self.server.port}"

    def _points_here(self) -> bool:
        """True if the running backend is the one this device's mycroft.conf names."""
        return self.server is not None and device_config.points_at(
            self.local_url, self.backend_config["server"]["version"])

    # pointing the device at its own backend -------------------------------------------

    def _sync_device_pointing(self) -> None:
        """Make mycroft.conf follow the `point_device_here` setting, never replacing
        another server's URL without the owner's yes (see `_ensure_pointed`)."""
        try:
            if not self.settings.get("point_device_here"):
                self._restore_device()
                return
            if self.server is None or self._points_here():
                return
            other = self._other_backend()
            if other:
                if self.state.get("_other_backend") != other:
                    LOG.warning(f"this device uses another backend ({other}); not changed")
                    self.speak_dialog("other.backend.found", {"url": other})
                    self.state.set("_other_backend", other)
                return
            self._point_device()
        except DeviceConfigError as e:
            LOG.error(f"cannot point this device at the personal backend: {e}")

    def _other_backend(self) -> str:
        """The URL of a server the device uses that is not this backend ("" if none)."""
        current = device_config.server_url()
        if current in ("", self.local_url, self.state.get("_pointed_url")):
            return ""
        return current

    def _point_device(self, url: str = "", version: str = "") -> None:
        """Point the device at a backend: its own (by default), or one elsewhere."""
        url = url or self.local_url
        previous = device_config.point_at(url, version or self.backend_config["server"]["version"])
        if "_previous_config" not in self.state:  # keep the very first snapshot
            self.state.set("_previous_config", previous)
        self.state.set("_pointed_url", url)
        self.state.pop("_other_backend")
        if not self.settings.get("point_device_here") and not self.client_mode:
            self.settings["point_device_here"] = True
            self.settings.store()
        LOG.info(f"this device now uses the personal backend at {url}")
        self.bus.emit(Message("configuration.updated"))

    def _restore_device(self) -> bool:
        """Put back the configuration from before `_point_device`; True if it did."""
        previous = self.state.get("_previous_config")
        if previous is None:
            return False
        restored = device_config.server_url() == self.state.get("_pointed_url")
        if restored:  # else the owner has since pointed the device elsewhere: keep that
            device_config.restore(previous)
            self.bus.emit(Message("configuration.updated"))
        self.state.pop("_previous_config")
        self.state.pop("_pointed_url")
        return restored

    def _ensure_pointed(self) -> bool:
        """Point the device here, asking first if it uses another backend."""
        if self.server is None:
            self.speak_dialog("backend.not.running")
            return False
        if self._points_here():
            return True
        other = self._other_backend()
        if other and self.ask_yesno("confirm.switch.backend", {"url": other}) != "yes":
            self.speak_dialog("left.unchanged")
            return False
        with self._lock:
            self._point_device()
        return True

    @intent_handler("use.backend.intent")
    @admin_action
    def handle_use_backend(self, message):
        if self._points_here():
            self.speak_dialog("already.using")
        elif self._ensure_pointed():
            self.speak_dialog("now.using")

    @intent_handler("stop.using.intent")
    def handle_stop_using(self, message):
        if self.client_mode:
            self.handle_disconnect(message)
        else:
            self._stop_using_here(message)

    @admin_action
    def _stop_using_here(self, message):
        with self._lock:
            self.settings["point_device_here"] = False
            restored = self._restore_device()
            self.settings.store()
        self.speak_dialog("stopped.using" if restored else "not.using")

    # client mode: this device joins a backend elsewhere -------------------------------

    def _start_link(self) -> None:
        """Keep in sync with the backend this device joined (if any, and not yet)."""
        url = self.state.get("_client_url")
        if url is None or self.link is not None or not device_config.identity().access:
            return
        self.link = client.Link(url, self.state.get("_client_version", "v1"), self.bus,
                                self.state, skip={self.skill_id}, on_revoked=self._on_revoked,
                                on_moved=self._on_moved, poll_interval=CLIENT_POLL_SECONDS)
        self.agent = self.link.start().agent
        LOG.info(f"keeping this device in sync with the backend at {url}")

    def _on_revoked(self) -> None:
        """The backend forgot this device (in the agent's thread, which ends): the last
        configuration stays; the owner may join again."""
        self.link, self.agent = None, None
        self.state.pop("_client_url")
        self.speak_dialog("disconnected.by.backend")

    def _on_moved(self, url: str) -> None:
        """The backend answers at a new address or port: follow it."""
        self.state.set("_client_url", url)
        self._point_device(url, self.state.get("_client_version", "v1"))

    def _find_backend(self) -> Optional[discovery.Backend]:
        """The backend to join: the `backend_url` setting, else the one found on the
        network (asking which, by name, when there are several)."""
        url = client.backend_url(str(self.settings.get("backend_url") or ""))
        if url:
            return discovery.Backend(name=url, url=url, version="v1", pairing="")
        found = discovery.browse()
        if len(found) <= 1:
            return found[0] if found else None
        names = [backend.name for backend in found]
        answer = self.get_response(
            "which.backend", {"names": self._join(names, "or")},
            validator=lambda utterance: pick(names, utterance, self.lang) or False,
            num_retries=1)
        return found[names.index(answer)] if answer in names else None

    def _join_backend(self, backend: discovery.Backend) -> None:
        """Point this device at `backend` and start the code pairing; the owner approves
        the code on the device that runs the backend."""
        with self._lock:
            if self.joining is not None:
                self.joining.cancel()
            if self.link is not None:
                self.link.stop()
                self.link, self.agent = None, None
            joining = client.PairingSession(backend.url, backend.version,
                                            on_paired=functools.partial(self._joined, backend),
                                            on_failed=self._join_failed)
            try:
                code = joining.request_code()
            except client.PairingFailed as e:
                self._join_failed(str(e))
                return
            self._point_device(backend.url, backend.version)
            if not self.state.get("_client_aside"):
                client.set_aside(client.client_files())
                self.state.set("_client_aside", True)
            self.joining = joining
            joining.start()
        self.speak_dialog("join.code", {"code": spell(code)})

    def _joined(self, backend: discovery.Backend, login: dict) -> None:
        with self._lock:
            self.joining = None
            device_config.save_identity(login)
            self.state.set("_client_url", backend.url)
            self.state.set("_client_version", backend.version)
            self._start_link()
        self.bus.emit(Message("mycroft.paired", {"uuid": login["uuid"]}))
        self.speak_dialog("joined", {"host": urlparse(backend.url).hostname})

    def _join_failed(self, reason: str) -> None:
        self.joining = None
        LOG.error(f"joining the personal backend failed: {reason}")
        self.speak_dialog("join.failed", {"reason": reason})

    @intent_handler("connect.intent")
    def handle_connect(self, message):
        if not self.client_mode:
            self.speak_dialog("not.client.mode")
        elif self.link is not None:
            self.speak_dialog("already.joined", {"host": urlparse(self.link.url).hostname})
        else:
            backend = self._find_backend()
            if backend is None:
                self.speak_dialog("no.backend.found")
            else:
                self._join_backend(backend)

    @intent_handler("connect.at.intent")
    def handle_connect_at(self, message):
        url = client.backend_url(message.data.get("address", ""))
        if not self.client_mode:
            self.speak_dialog("not.client.mode")
        elif not url:
            self.speak_dialog("no.backend.found")
        else:
            self.settings["backend_url"] = url
            self.settings.store()
            self._join_backend(discovery.Backend(name=url, url=url, version="v1", pairing=""))

    @intent_handler("disconnect.intent")
    def handle_disconnect(self, message):
        if not self.client_mode:
            self._stop_using_here(message)
            return
        with self._lock:
            joined = self.link is not None or self.joining is not None or \
                self.state.get("_client_aside", False)
            self.shutdown()
            self._restore_device()
            if self.state.get("_client_aside"):
                client.put_back(client.client_files())
            for key in ("_client_url", "_client_version", "_client_aside"):
                self.state.pop(key)
        self.bus.emit(Message("configuration.updated"))
        self.speak_dialog("left.backend" if joined else "not.joined")

    @intent_handler("which.backend.intent")
    def handle_which_backend(self, message):
        if not self.client_mode:
            url = device_config.server_url()
            if self._points_here():
                self.speak_dialog("using.own.backend")
            elif url:
                self.speak_dialog("using.other.backend", {"url": url})
            else:
                self.speak_dialog("not.using")
        elif self.link is not None:
            url = urlparse(self.link.url)
            self.speak_dialog("joined.backend" if self.link.reachable else "backend.unreachable",
                              {"host": url.hostname, "port": url.port})
        elif self.joining is not None:
            self.speak_dialog("join.waiting")
        else:
            self.speak_dialog("not.joined")

    # this device's speech through the backend -----------------------------------------

    def _speech_is_private(self) -> bool:
        url = device_config.speech_url()
        return "_speech_previous" in self.state and bool(url) and \
            device_config.holds(device_config.speech_values(url))

    def _set_private_speech(self, private: bool) -> str:
        """Send this device's speech to the backend's speech server (OVOS's stock plugins
        with its speech URL), or put back the speech configuration from before; the
        dialog that says what happened."""
        if not private:
            previous = self.state.get("_speech_previous")
            if previous is None:
                return "speech.not.private"
            device_config.put_back(previous, device_config.SPEECH_KEYS)
            self.state.pop("_speech_previous")
            if self.agent is not None:
                try:
                    self.agent.transport.revoke_speech()
                except SyncError as e:
                    LOG.warning(f"the speech URL could not be revoked: {e}")
            self.bus.emit(Message("configuration.updated"))
            return "speech.public"
        if self._speech_is_private():
            return "speech.already.private"
        if self.agent is None:  # the agent runs while this device is paired here
            return "speech.needs.pairing"
        url = self.agent.transport.speech_url()
        previous = device_config.apply(device_config.speech_values(url))
        if "_speech_previous" not in self.state:  # keep the very first snapshot
            self.state.set("_speech_previous", previous)
        self.bus.emit(Message("configuration.updated"))
        return "speech.private"

    def _sync_private_speech(self) -> None:
        """Make the speech configuration follow the `private_speech` setting."""
        wanted = bool(self.settings.get("private_speech"))
        if wanted == ("_speech_previous" in self.state):
            return
        try:
            dialog = self._set_private_speech(wanted)
        except (DeviceConfigError, SyncError) as e:
            LOG.error(f"cannot change where this device's speech goes: {e}")
            return
        if dialog == "speech.needs.pairing":
            LOG.warning("private speech needs this device paired to the personal backend")

    def _speech_intent(self, private: bool) -> None:
        with self._lock:
            try:
                dialog = self._set_private_speech(private)
            except SyncError as e:
                self.speak_dialog("request.refused", {"reason": str(e)})
                return
            if dialog in ("speech.private", "speech.public"):
                self.settings["private_speech"] = private
                self.settings.store()
        self.speak_dialog(dialog)

    @intent_handler("speech.quality.intent")
    @admin_action
    def handle_speech_quality(self, message):
        """Which engine understands this house, and why it is the fallback when it is."""
        if self.server is None:
            self.speak_dialog("backend.not.running")
            return
        status = service(self.server.app, "stt").status(self.lang)
        if status["fallback_reason"]:
            self.speak_dialog("speech.quality.fallback", {"reason": status["fallback_reason"]})
        elif status["model"]:
            self.speak_dialog("speech.quality.good", {"model": status["model"]})
        else:
            self.speak_dialog("speech.quality.other", {"engine": status["engine"]})

    @intent_handler("speech.private.intent")
    @admin_action
    def handle_private_speech(self, message):
        self._speech_intent(True)

    @intent_handler("speech.public.intent")
    @admin_action
    def handle_public_speech(self, message):
        self._speech_intent(False)

    # pairing -------------------------------------------------------------------------

    def this_device(self) -> Optional[str]:
        return device_config.this_device(self.store, self.state.get("_device_uuid", ""))

    def _device_name(self, uuid: str) -> str:
        return devices.get(self.store, uuid)["name"]

    @intent_handler("pair.intent")
    def handle_pair(self, message):
        if self.client_mode:
            self.handle_connect(message)
        else:
            self._pair_here(message)

    @admin_action
    def _pair_here(self, message):
        if not self._ensure_pointed():
            return
        if device_config.is_paired(self.store):
            self.speak_dialog("already.paired", {"name": self._device_name(self.this_device())})
            return
        login = pairing.pair_directly(self.store, self.backend_config,
                                      device_config.identity().uuid)
        device_config.save_identity(login)
        self.state.set("_device_uuid", login["uuid"])
        with self._lock:
            self._start_sync()
        # the login (with its tokens) stays off the bus: listeners only need the event
        self.bus.emit(message.forward("mycroft.paired", {"uuid": login["uuid"]}))
        self.speak_dialog("paired", {"name": self._device_name(login["uuid"])})

    def announce_pairing(self, request: dict) -> None:
        """Called by the backend (in a server thread) when a device waits for approval;
        devices that asked within its announce interval come as one, with their `count`."""
        count = request.get("count", 1)
        if count > 1:
            self.speak_dialog("pairing.requested.several",
                              {"code": spell(request["code"]), "count": count})
        else:
            self.speak_dialog("pairing.requested", {"code": spell(request["code"])})

    @intent_handler("approve.new.intent")
    @intent_handler("approve.code.intent")
    @admin_action
    def handle_approve(self, message):
        code = self._waiting_code(message, "which.code")
        if code:
            pairing.approve(self.store, code)
            self.speak_dialog("approved", {"code": spell(code)})

    @intent_handler("deny.new.intent")
    @intent_handler("deny.code.intent")
    @admin_action
    def handle_deny(self, message):
        code = self._waiting_code(message, "which.code.deny")
        if code:
            pairing.deny(self.store, code)
            self.speak_dialog("denied", {"code": spell(code)})

    def _waiting_code(self, message, question: str) -> Optional[str]:
        """The waiting pairing the owner means: the code said, the only one waiting, or
        the one they pick when asked `question`; None (after saying why) if there is none."""
        waiting = [p["code"] for p in pairing.pending(self.store)]
        code = heard_code(message.data.get("code") or "", self.lang)
        if not code:
            if not waiting:
                self.speak_dialog("nothing.pending")
                return None
            code = waiting[0] if len(waiting) == 1 else self.get_response(
                question, {"codes": self._join([spell(c) for c in waiting], "or")},
                validator=lambda answer: heard_code(answer, self.lang) in waiting
                and heard_code(answer, self.lang),
                num_retries=1)
            if not code:
                self.speak_dialog("cancelled")
                return None
        if code not in waiting:
            self.speak_dialog("no.such.code", {"code": spell(code)})
            return None
        return code

    @intent_handler("pairings.waiting.intent")
    @admin_action
    def handle_waiting(self, message):
        codes = [spell(p["code"]) for p in pairing.pending(self.store)]
        if not codes:
            self.speak_dialog("nothing.pending")
        elif len(codes) == 1:
            self.speak_dialog("one.waiting", {"code": codes[0]})
        else:
            self.speak_dialog("several.waiting", {
                "count": len(codes), "codes": self._join(codes, "and")})

    def _join(self, items: List[str], connector: str, sep: str = ",") -> str:
        """"A, B and C" with this language's word for `connector` ("and", "or"), from the
        skill's own dialogs: ovos-workshop's join_word_list has no French connectors."""
        if len(items) < 2:
            return "".join(items)
        word = self.resources.render_dialog(f"connector.{connector}")
        return f"{f'{sep} '.join(items[:-1])} {word} {items[-1]}"

    # devices -------------------------------------------------------------------------

    @intent_handler("list.devices.intent")
    @admin_action
    def handle_list_devices(self, message):
        names = [d["name"] for d in devices.list_all(self.store) if d.get("tokens")]
        if not names:
            self.speak_dialog("no.devices")
            return
        self.speak_dialog("one.device" if len(names) == 1 else "devices.list",
                          {"count": len(names),
                           "names": self._join(names, "and")})

    @intent_handler("devices.online.intent")
    @admin_action
    def handle_online(self, message):
        online, offline = devices.presence_report(self.store)
        if not online and not offline:
            self.speak_dialog("no.devices")
            return
        names = {state: self._join([d["name"] for d in found], "and")
                 for state, found in (("online", online), ("offline", offline))}
        if not offline:
            self.speak_dialog("online.all", {"names": names["online"]})
        elif not online:
            self.speak_dialog("online.none", {"offline": names["offline"]})
        else:
            self.speak_dialog("online.some", names)

    @intent_handler("forget.device.intent")
    @admin_action
    def handle_forget(self, message):
        name = message.data.get("name", "").strip()
        if not name or self.voc_match(name, "this.device", exact=True):
            uuid = self.this_device()
            if uuid is None:
                self.speak_dialog("not.paired")
                return
            matches = [devices.get(self.store, uuid)]
        else:
            matches = devices.find_by_name(self.store, name)
        if not matches:
            self.speak_dialog("no.device.named", {"name": name})
            return
        if len(matches) > 1:
            self.speak_dialog("several.devices.named", {"name": name, "count": len(matches)})
            return
        device = matches[0]
        if self.ask_yesno("confirm.forget", {"name": device["name"]}) != "yes":
            self.speak_dialog("kept.device", {"name": device["name"]})
            return
        pairing.unpair(self.store, device["uuid"])
        with self._lock:
            self._start_sync()  # stops it if that was this device
        self.speak_dialog("forgot.device", {"name": device["name"]})

    @intent_handler("rename.device.intent")
    @admin_action
    def handle_rename(self, message):
        uuid = self.this_device()
        if uuid is None:
            self.speak_dialog("not.paired")
            return
        name = message.data.get("name", "").strip()
        if name.islower():  # transcriptions are lower case; names read better capitalised
            name = name.title()
        device = devices.update(self.store, uuid, {"name": name})
        self.speak_dialog("renamed", {"name": device["name"]})

    @intent_handler("recordings.on.intent")
    @admin_action
    def handle_recordings_on(self, message):
        self._set_opt_in(True)

    @intent_handler("recordings.off.intent")
    @admin_action
    def handle_recordings_off(self, message):
        self._set_opt_in(False)

    def _set_opt_in(self, enabled: bool) -> None:
        """The device's opt-in for the wake-word and utterance datasets, on the backend
        and in the device's own configuration (its listener uploads only when opted in)."""
        uuid = self.this_device()
        if uuid is None:
            self.speak_dialog("not.paired")
            return
        device_config.set_opt_in(enabled)  # first: a broken mycroft.conf changes nothing
        device = devices.update(self.store, uuid, {"opt_in": enabled})
        self.bus.emit(Message("configuration.updated"))
        recording = self.backend_config["listener"]
        if not enabled:
            dialog = "recordings.off"
        elif recording["record_wakewords"] or recording["record_utterances"]:
            dialog = "recordings.on"
        else:
            dialog = "recordings.on.backend.off"
        self.speak_dialog(dialog, {"name": device["name"]})

    @intent_handler("house.recording.on.intent")
    @admin_action
    def handle_house_recording_on(self, message):
        self._set_house_recording(message, True)

    @intent_handler("house.recording.off.intent")
    @admin_action
    def handle_house_recording_off(self, message):
        self._set_house_recording(message, False)

    def _set_house_recording(self, message, enabled: bool) -> None:
        """Switch what the backend keeps from every opted-in device (the same config keys
        as the web page's and admin API's), after the owner's yes. An utterance that names
        only wake words or only utterances switches that one; otherwise both."""
        utterance = message.data.get("utterance", "")
        named = [word for word in RECORDING_SWITCHES if self.voc_match(utterance, word)]
        what = named[0] if len(named) == 1 else "both"
        keys = [RECORDING_SWITCHES[word] for word in (named if len(named) == 1 else RECORDING_SWITCHES)]
        state = "on" if enabled else "off"
        what_said = self.resources.render_dialog(f"recording.what.{what}")
        if all(self.backend_config["listener"][key] == enabled for key in keys):
            self.speak_dialog(f"house.recording.already.{state}", {"what": what_said})
            return
        if self.ask_yesno(f"confirm.house.recording.{state}", {"what": what_said}) != "yes":
            self.speak_dialog("house.recording.unchanged")
            return
        reconfigure.update(self.backend_config, config_module.default_config_path(),
                           {"listener": dict.fromkeys(keys, enabled)})
        self.speak_dialog(f"house.recording.{state}", {"what": what_said})
    # moving in from the old backend, and backups ---------------------------------------

    def _old_backend_found(self) -> bool:
        try:
            return not legacy_import.find_sources().empty()
        except legacy_import.NothingFound:
            return False

    def _offer_legacy_import_once(self) -> None:
        """At the first start that finds an old installation, offer to bring it over
        (asked in a moment, from a thread of its own, once the skill is loaded; never
        asked again)."""
        if self.store is not None and not self.state.get("_legacy_offered") \
                and self._old_backend_found():
            offer = threading.Timer(1.0, self._offer_legacy_import)
            offer.daemon = True
            offer.start()

    def _offer_legacy_import(self) -> None:
        if self.store is None:  # unloaded meanwhile
            return
        self.state.set("_legacy_offered", True)
        # no intent made this skill active: it must be, for the answer to come back to it
        self.bus.emit(Message("intent.service.skills.activate",
                              {"skill_id": self.skill_id, "timeout": 5},
                              {"skill_id": self.skill_id}))
        if self.ask_yesno("legacy.offer") == "yes":
            self._import_legacy()
        else:
            self.speak_dialog("legacy.later")

    @intent_handler("import.legacy.intent")
    @admin_action
    def handle_import_legacy(self, message):
        self._import_legacy()

    def _import_legacy(self) -> None:
        """Import through this skill's own store: its server holds the data folder."""
        try:
            report = legacy_import.run(self.store, self.backend_config,
                                       config_module.default_config_path())
        except legacy_import.NothingFound:
            self.speak_dialog("legacy.none")
            return
        except legacy_import.LegacyFormatError as e:
            LOG.error(str(e))
            self.speak_dialog("legacy.failed", {"reason": str(e)})
            return
        LOG.info("\n".join(report.lines()))
        done = report.imported
        if not any(done.values()):
            self.speak_dialog("legacy.nothing.new")
            return
        self.speak_dialog("legacy.imported", {
            "devices": done["devices"], "metrics": done["metrics"],
            "recordings": done["recordings"],
            "settings": done["shared skill settings"] + done["device skill settings"]})

    def _backup_folder(self) -> str:
        return self.settings.get("backup_folder") or \
            backup.default_folder(self.backend_config["data_path"])

    def _backup(self) -> str:
        return backup.keep_dated(self.store, config_module.default_config_path(),
                                 self._backup_folder(),
                                 float(self.settings.get("backup_days") or DEFAULTS["backup_days"]))

    def _automatic_backup(self, message=None) -> None:
        if self.store is None:
            return
        try:
            LOG.info(f"automatic backup written to {self._backup()}")
        except (BackendError, OSError) as e:
            LOG.error(f"automatic backup failed: {getattr(e, 'message', None) or e}")

    @intent_handler("backup.now.intent")
    @admin_action
    def handle_backup_now(self, message):
        try:
            self._backup()
        except OSError as e:
            self.speak_dialog("backup.failed", {"reason": e.strerror or str(e)})
            return
        self.speak_dialog("backup.done", {"folder": self._backup_folder()})

    @intent_handler("backup.last.intent")
    @admin_action
    def handle_backup_last(self, message):
        made = backup.latest(self._backup_folder())
        if made is None:
            self.speak_dialog("backup.none")
            return
        self.speak_dialog("backup.last", {"when": time.strftime("on %A, %B %d at %H:%M",
                                                                time.localtime(made))})

    @intent_handler("backend.address.intent")
    @admin_action
    def handle_address(self, message):
        if self.server is None:
            self.speak_dialog("backend.not.running")
            return
        url = urlparse(config_module.public_url(self.backend_config))
        server = self.backend_config["server"]
        local_only = not server["url"] and config_module.is_loopback(server["host"])
        self.speak_dialog("backend.address.local.only" if local_only else "backend.address",
                          {"host": url.hostname, "port": url.port})

    # location ------------------------------------------------------------------------

    @intent_handler("where.am.i.intent")
    @admin_action
    def handle_where(self, message):
        uuid = self.this_device()
        location = devices.get(self.store, uuid)["location"] if uuid else device_config.location()
        if not location:
            self.speak_dialog("location.unknown")
            return
        self.speak_dialog("location.is", {"place": devices.describe_location(location)})

    @intent_handler("change.location.intent")
    @admin_action
    def handle_change_location(self, message):
        place = message.data.get("location") or self.get_response("ask.where", num_retries=1)
        if not place:
            self.speak_dialog("cancelled")
            return
        candidates = places.search(place, limit=MAX_CHOICES)
        if not candidates:
            self.speak_dialog("place.not.found", {"place": place})
            return
        chosen = candidates[0]
        if len(candidates) > 1:
            chosen = self._choose_place(candidates)
            if chosen is None:
                self.speak_dialog("cancelled")
                return
        location = devices.normalise_location(chosen)
        uuid = self.this_device()
        agent = self.agent
        if agent is not None and uuid == agent.uuid:
            # synced: the backend holds it and the agent brings it down at once; a location
            # in mycroft.conf would hide every later change made on the web page
            device_config.clear_location()  # first: a broken mycroft.conf changes nothing
            devices.set_location(self.store, uuid, location)
        else:
            device_config.set_location(location)  # first: a broken mycroft.conf changes nothing
            if uuid is not None:
                devices.set_location(self.store, uuid, location)
        self.bus.emit(message.forward("configuration.updated"))
        self.speak_dialog("location.changed", {"place": chosen["address"]})

    def _choose_place(self, candidates: List[dict]) -> Optional[dict]:
        """Ask which of several places with that name the user meant."""
        addresses = [c["address"] for c in candidates]

        def chosen(utterance: str):
            return pick(addresses, utterance, self.lang,
                        self._said_position(utterance, len(addresses))) or False

        answer = self.get_response(
            "which.place", {"options": self._join(addresses, "or", sep=";")},
            validator=chosen, num_retries=1)
        return candidates[addresses.index(answer)] if answer in addresses else None

    def _said_position(self, utterance: str, count: int) -> Optional[int]:
        """The position an ordinal word of this language names (vocab ordinal.N.voc,
        last.voc), for the ordinals the number parser misses (Spanish and Italian
        feminine ones: "la segunda", "la seconda"); None if the answer has none."""
        if self.voc_match(utterance, "last"):
            return count
        return next((n for n in range(1, MAX_CHOICES + 1)
                     if self.voc_match(utterance, f"ordinal.{n}")), None)
