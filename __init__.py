"""The skill: runs the personal backend inside the device and lets its owner administer it."""
from ovos_utils.log import LOG
from ovos_workshop.skills import OVOSSkill

from .backend import config as backend_config
from .backend import create_app
from .backend.server import BackendServer
from .backend.store import Store


class PersonalBackendSkill(OVOSSkill):
    """Starts the backend's HTTP server in a thread on initialize, stops it on shutdown."""

    server = None

    def initialize(self):
        try:
            self.start_backend()
        except Exception:
            self.shutdown()
            raise

    def start_backend(self) -> None:
        config = backend_config.load(overrides={"server": {"port": int(self.settings.get("port", 6712))}})
        self.store = Store(config["data_path"])
        self.server = BackendServer(create_app(config, self.store), config["server"]["host"],
                                    config["server"]["port"])
        self.server.start()

    def shutdown(self):
        if self.server is not None:
            self.server.stop()
            self.server = None
        LOG.debug("personal backend skill shut down")
