"""The HTTP server: waitress in a background thread, startable and stoppable from a skill.

waitress binds when the server object is built, so a busy port raises `OSError`
in `start()` (Werkzeug's server calls `sys.exit` instead, which would take the
whole skill loader down).
"""
import logging
import threading
from typing import Optional

from ovos_utils.log import LOG
from waitress.channel import HTTPChannel
from waitress.server import create_server
from waitress.task import WSGITask
from waitress.wasyncore import close_all

# seconds the event loop sleeps in select(); waitress reads this setting as an int, and 0
# makes it spin at full CPU while idle. stop() wakes the loop through its trigger pipe.
LOOP_TIMEOUT = 1
# waitress refuses bodies over its own limit with a plain-text 413 before the app sees them;
# its limit is this many times the app's, so the app answers (in JSON) for bodies just over
# `max_body_mb` and waitress only cuts off the ones far over it
WAITRESS_BODY_FACTOR = 2
# waitress stops accepting anyone once it holds `connection_limit` connections, and a slow
# client trickling its request a byte at a time is never idle long enough for
# channel_timeout to end it: one address may hold at most CONNECTIONS_PER_ADDRESS of them,
# so a slowloris from one machine cannot lock the others out
CONNECTION_LIMIT = 400
CONNECTIONS_PER_ADDRESS = 100


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
                clear_untrusted_proxy_headers=True, connection_limit=CONNECTION_LIMIT)
            self._server.channel_class = _Channel  # this server's only: no global change
            _limit_connections_per_address(self._server, CONNECTIONS_PER_ADDRESS)
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
    task_class = _KeepAliveTask


def _limit_connections_per_address(server, limit: int) -> None:
    """Close a new connection at once when its address already holds `limit` open ones
    (waitress builds a channel per accepted socket through `server.channel_class`)."""
    make_channel = server.channel_class

    def channel(owner, sock, addr, adj, **kwargs):
        host = addr[0] if isinstance(addr, (tuple, list)) else addr
        # a copy (one C call under the GIL): worker threads remove channels they close, and a
        # "dict changed size" error here would make waitress close the whole server
        channels = list(owner._map.values())
        held = sum(1 for other in channels
                   if isinstance(other, make_channel) and other.addr and other.addr[0] == host)
        if held >= limit:
            LOG.debug(f"refusing a connection from {host}: it holds {held} already")
            sock.close()
            return None
        return make_channel(owner, sock, addr, adj, **kwargs)

    server.channel_class = channel
