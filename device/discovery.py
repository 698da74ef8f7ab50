"""Finding the personal backend on the local network: mDNS / DNS-SD (python-zeroconf).

A backend that listens beyond loopback advertises `_ovos-backend._tcp.local.` with a TXT
record (`api`: its API version, `pairing`: auto or confirm, `name`: a friendly name the
owner can say); a device in client mode browses for it. Nothing else is announced: the
URL is rebuilt from the service's address and port.
"""
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

from ovos_utils.log import LOG

SERVICE_TYPE = "_ovos-backend._tcp.local."
BROWSE_SECONDS = 3.0
ANY_ADDRESS = ("", "0.0.0.0", "::")


@dataclass(frozen=True)
class Backend:
    """A backend found on the network."""
    name: str
    url: str
    version: str
    pairing: str


def _ipv4_addresses(host: str) -> List[str]:
    """The non-loopback IPv4 addresses a server bound to `host` answers on."""
    if host not in ANY_ADDRESS:
        return [] if host.startswith("127.") or host == "localhost" or ":" in host else [host]
    import ifaddr
    return sorted({ip.ip for adapter in ifaddr.get_adapters() for ip in adapter.ips
                   if isinstance(ip.ip, str) and not ip.ip.startswith("127.")})


class Advertiser:
    """Announces one backend while it runs; `stop` withdraws it (a DNS-SD goodbye, so
    browsers forget it at once instead of after the record's time to live)."""

    def __init__(self, host: str, port: int, version: str, pairing: str, name: str):
        self.addresses = _ipv4_addresses(host)
        self.host, self.port = host, port
        self.properties = {"api": version, "pairing": pairing, "name": name}
        self.name = name
        self._zeroconf = None
        self._info = None
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "Advertiser":
        """Register in a thread: DNS-SD probes for name conflicts first (about a second)."""
        if self.addresses:
            self._thread = threading.Thread(target=self._register, daemon=True,
                                            name="backend-advertiser")
            self._thread.start()
        return self

    def _register(self) -> None:
        from zeroconf import IPVersion, ServiceInfo, Zeroconf
        label = "".join(ch if ch.isalnum() or ch in " -" else "-" for ch in self.name)[:60]
        info = ServiceInfo(SERVICE_TYPE, f"{label or 'backend'}.{SERVICE_TYPE}",
                           addresses=[socket.inet_aton(a) for a in self.addresses],
                           port=self.port, properties=self.properties,
                           server=f"{socket.gethostname()}.local.")
        interfaces = self.addresses if self.host not in ANY_ADDRESS else None
        with self._lock:
            try:
                self._zeroconf = Zeroconf(ip_version=IPVersion.V4Only,
                                          **({"interfaces": interfaces} if interfaces else {}))
                self._zeroconf.register_service(info, allow_name_change=True)
                self._info = info
                LOG.info(f"personal backend announced on the network as {info.name} "
                         f"({', '.join(self.addresses)}:{self.port})")
            except Exception as e:  # no multicast here: the backend still serves
                LOG.warning(f"cannot announce the personal backend on the network: {e}")

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            zeroconf, info, self._zeroconf, self._info = self._zeroconf, self._info, None, None
        if zeroconf is None:
            return
        try:
            if info is not None:
                zeroconf.unregister_service(info)
        finally:
            zeroconf.close()


class Watcher:
    """Browses for backends until stopped: `found()` is what answers now, and
    `on_change()` is called (in the browser's thread) whenever one appears or changes."""

    def __init__(self, on_change: Callable[[], None] = lambda: None):
        self.on_change = on_change
        self._found: Dict[str, Backend] = {}
        self._lock = threading.Lock()
        self._zeroconf = self._browser = None

    def start(self) -> "Watcher":
        from zeroconf import IPVersion, ServiceBrowser, Zeroconf
        self._zeroconf = Zeroconf(ip_version=IPVersion.V4Only)
        self._browser = ServiceBrowser(self._zeroconf, SERVICE_TYPE, handlers=[self._changed])
        return self

    def _changed(self, zeroconf, service_type: str, name: str, state_change) -> None:
        from zeroconf import ServiceStateChange
        backend = None
        if state_change is not ServiceStateChange.Removed:
            info = zeroconf.get_service_info(service_type, name, timeout=1000)
            backend = _backend(info) if info else None
        with self._lock:
            if backend is None:
                self._found.pop(name, None)
            else:
                self._found[name] = backend
        if backend is not None:
            self.on_change()

    def found(self) -> List[Backend]:
        """The backends seen and not withdrawn, sorted by name."""
        with self._lock:
            return sorted(set(self._found.values()), key=lambda b: (b.name, b.url))

    def stop(self) -> None:
        if self._browser is not None:
            self._browser.cancel()
        if self._zeroconf is not None:
            self._zeroconf.close()
        self._zeroconf = self._browser = None


def browse(seconds: float = BROWSE_SECONDS) -> List[Backend]:
    """The backends that answer on the local network within `seconds`, sorted by name."""
    watcher = Watcher().start()
    try:
        time.sleep(seconds)
        return watcher.found()
    finally:
        watcher.stop()


def _backend(info) -> Optional[Backend]:
    addresses = info.parsed_addresses()
    if not addresses or not info.port:
        return None
    txt = {k.decode(errors="replace"): (v or b"").decode(errors="replace")
           for k, v in info.properties.items()}
    name = txt.get("name") or info.name.split(".")[0]
    return Backend(name=name, url=f"http://{addresses[0]}:{info.port}",
                   version=txt.get("api") or "v1", pairing=txt.get("pairing", ""))
