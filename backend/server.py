"""The HTTP server: waitress in a background thread, startable and stoppable from a skill.

waitress binds when the server object is built, so a busy port raises `OSError`
in `start()` (Werkzeug's server calls `sys.exit` instead, which would take the
whole skill loader down).
"""
import ipaddress
import logging
import threading
import time
from collections import Counter
from typing import Callable, List, Optional

from ovos_utils.log import LOG
from waitress.channel import HTTPChannel
from waitress.server import create_server
from waitress.task import WSGITask
from waitress.wasyncore import close_all

from . import close_services

# seconds the event loop sleeps in select(); waitress reads this setting as an int, and 0
# makes it spin at full CPU while idle. stop() wakes the loop through its trigger pipe.
LOOP_TIMEOUT = 1
# waitress refuses bodies over its own limit with a plain-text 413 before the app sees them;
# its limit is this many times the app's, so the app answers (in JSON) for bodies just over
# `max_body_mb` and waitress only cuts off the ones far over it
WAITRESS_BODY_FACTOR = 2
# waitress stops accepting anyone once it holds `connection_limit` connections. Here one
# address may hold at most CONNECTIONS_PER_ADDRESS of them and one network (see
# `network_of`) CONNECTIONS_PER_NETWORK; at a limit, a newcomer takes the place of the
# oldest idle connection of the biggest holder (at its own address's limit, its own), so
# neither one machine nor a crowd of addresses (all of 127/8, an IPv6 /64) can lock the
# others out, nor a process sharing the owner's address (`_admit`)
CONNECTION_LIMIT = 400
CONNECTIONS_PER_ADDRESS = 100
CONNECTIONS_PER_NETWORK = 200
# seconds a client has for a whole request line and headers once it began them. waitress's
# channel_timeout only ends idle connections: a slowloris sending a byte now and then is
# never idle. Bodies are not covered (a device's recording may come slowly over Wi-Fi).
HEAD_TIMEOUT = 10
# waitress's own limit counts its listening socket, its trigger and connections closing
CONNECTION_HEADROOM = 16


class BackendServer:
    """Serve a WSGI app on host:port in a daemon thread."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 6712, threads: int = 8,
                 max_body_bytes: int = 10 * 1024 * 1024):
        self.app = app
        self.host = host
        self.requested_port = port
        self.threads = threads
        self.max_body_bytes = max_body_bytes
        self._server = None
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        """The bound port (useful when asked for port 0)."""
        return int(self._server.effective_port) if self._server else self.requested_port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> "BackendServer":
        """Bind and serve; raises OSError when the address is unavailable."""
        with self._lock:
            if self.running:
                return self
            # waitress warns "Task queue depth is N" for each request that waits for a free
            # thread: devices polling in bursts do that all the time, and at 32 concurrent
            # clients it logged a line per request (16,000 in 12 s, 5% of the throughput)
            logging.getLogger("waitress.queue").setLevel(logging.ERROR)
            self._server = create_server(
                self.app, host=self.host, port=self.requested_port, threads=self.threads,
                asyncore_loop_timeout=LOOP_TIMEOUT,
                max_request_body_size=WAITRESS_BODY_FACTOR * self.max_body_bytes,
                channel_timeout=30, ident="ovos-personal-backend",
                # clients are on the LAN; never trust X-Forwarded-* unless a proxy is configured
                # `_limit_connections` keeps CONNECTION_LIMIT itself: waitress must go on
                # accepting at the limit, or no newcomer could take a hog's place
                clear_untrusted_proxy_headers=True,
                connection_limit=CONNECTION_LIMIT + CONNECTION_HEADROOM)
            self._server.channel_class = _Channel  # this server's only: no global change
            _limit_connections(self._server)
            self._thread = threading.Thread(target=self._server.run, daemon=True,
                                            name=f"personal-backend:{self.port}")
            self._thread.start()
            LOG.info(f"personal backend serving on {self.url}")
            return self

    def stop(self, timeout: float = 0.4) -> None:
        """Stop serving and free the port; safe to call any number of times.

        Waits at most `timeout` (twice) for requests in progress: their connections are
        closed anyway, and their (daemon) worker threads finish on their own, so a slow
        upstream call does not hold up the skill's shutdown."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server, self._thread = None, None
        if server is None:
            return
        # let requests in progress finish first: a worker that completes one wakes the event
        # loop through its trigger, which must still be open then (else EBADF tracebacks)
        server.task_dispatcher.shutdown(timeout=timeout)
        # then close every socket from inside the event loop thread, which ends the loop
        socket_map = server._map
        try:
            server.trigger.pull_trigger(lambda: close_all(socket_map))
        except OSError as e:  # its trigger is already closed (EBADF, seen once in ~700 stops)
            LOG.warning(f"personal backend: event loop trigger unusable ({e}); closing directly")
            close_all(socket_map, ignore_all=True)
        if thread is not None:
            thread.join(timeout)
        if thread is not None and thread.is_alive():
            LOG.warning("personal backend server thread did not stop in time")
        close_services(self.app)
        LOG.info("personal backend stopped")


class _KeepAliveTask(WSGITask):
    """waitress closes the connection after any HTTP/1.1 answer it cannot give a
    Content-Length, 304 Not Modified included, though a 304 (or 204) never has a body:
    every conditional poll of a device would cost it a new connection, and made a 304
    dearer for the server than the whole body. Those answers keep the connection here."""

    _bodiless = False

    def build_response_header(self):
        self._bodiless = (self.status[:3] in ("204", "304") and self.version == "1.1" and
                          self.request.headers.get("CONNECTION", "").lower() != "close")
        try:
            return super().build_response_header()
        finally:
            self._bodiless = False

    def set_close_on_finish(self) -> None:
        if not self._bodiless:
            super().set_close_on_finish()


class _Channel(HTTPChannel):
    """waitress's channel, with a deadline on each request head (see HEAD_TIMEOUT)."""

    task_class = _KeepAliveTask
    network = ""  # see network_of; set by _limit_connections
    _head_started: Optional[float] = None  # monotonic time the unfinished head began

    def received(self, data) -> bool:
        before = self.request
        result = super().received(data)
        head = self.request
        if head is None or head.headers_finished:
            self._head_started = None
        elif head is not before:
            self._head_started = time.monotonic()
        return result

    def readable(self) -> bool:
        """Called by the event loop at least once a second (LOOP_TIMEOUT): the place to
        end a head that is late, the way waitress ends idle channels (`will_close`)."""
        started = self._head_started
        # never while a request is served: a head pipelined behind it waits for it
        if started is not None and not self.requests and \
                time.monotonic() - started > HEAD_TIMEOUT:
            LOG.debug(f"closing a connection from {self.addr[0]}: its request head took "
                      f"over {HEAD_TIMEOUT} s")
            self._head_started, self.will_close = None, True
        return super().readable()


def network_of(host: str) -> str:
    """The network an address counts in for connection limits: its /24 (IPv4) or /64
    (IPv6, where one machine may use any address of its /64), and one for all loopback
    addresses (any local process may use any of 127/8)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "loopback"
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def _host(channel: _Channel) -> str:
    return channel.addr[0] if isinstance(channel.addr, (tuple, list)) else str(channel.addr)


def _make_room(channels: List[_Channel], group: Callable[[_Channel], str], held: int) -> bool:
    """Close the oldest idle connection of the biggest group of `channels` (by `group`)
    if it holds more than the newcomer's group, which holds `held`; False if none does.

    Idle: no request being served and no answer left to send. A connection that only
    waits or dribbles is cheap for its holder and worth more to a newcomer."""
    sizes = Counter(group(channel) for channel in channels)
    biggest, size = sizes.most_common(1)[0] if sizes else ("", 0)
    idle = [c for c in channels
            if group(c) == biggest and not c.requests and not c.total_outbufs_len]
    if size <= held + 1 or not idle:
        return False
    victim = min(idle, key=lambda channel: channel.last_activity)
    LOG.debug(f"closing an idle connection of {biggest} ({size} held) for a newcomer")
    victim.will_close = True
    return True


def _admit(server, host: str, network: str) -> bool:
    """Whether a new connection from `host` may open (making room for it if need be)."""
    # a copy (one C call under the GIL): worker threads remove channels they close, and a
    # "dict changed size" error here would make waitress close the whole server
    channels = [c for c in list(server._map.values())
                if isinstance(c, _Channel) and c.addr and not c.will_close]
    mine = [channel for channel in channels if _host(channel) == host]
    if len(mine) >= CONNECTIONS_PER_ADDRESS:  # its own oldest idle one, if any, makes room:
        return _make_room(mine, _host, 0)     # the owner may share an address (127.0.0.1)
    peers = [channel for channel in channels if channel.network == network]
    if len(peers) >= CONNECTIONS_PER_NETWORK:  # room made here is room in the total too
        return _make_room(peers, _host, len(mine))
    if len(channels) >= CONNECTION_LIMIT:
        return _make_room(channels, lambda channel: channel.network, len(peers))
    return True


def _limit_connections(server) -> None:
    """Keep the connection limits (see CONNECTION_LIMIT) at each accepted connection
    (waitress builds a channel per accepted socket through `server.channel_class`)."""
    make_channel = server.channel_class

    def channel(owner, sock, addr, adj, **kwargs):
        host = addr[0] if isinstance(addr, (tuple, list)) else str(addr)
        network = network_of(host)
        if not _admit(owner, host, network):
            LOG.debug(f"refusing a connection from {host}: it holds its share already")
            sock.close()
            return None
        made = make_channel(owner, sock, addr, adj, **kwargs)
        made.network = network
        return made

    server.channel_class = channel
