"""Stand-ins for the outside world: small real HTTP servers on 127.0.0.1 that answer
what a test tells them and record every request they receive, plus a paired device
driving the real ovos-backend-client (built with helpers.py).

No network beyond the loopback: an upstream base URL in the backend config is
pointed at a stand-in's `url`.
"""
import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, List, NamedTuple, Tuple
from urllib.parse import parse_qsl, urlsplit

from conftest import free_port
from helpers import device_backend, identity_file

Reply = Tuple[int, Dict[str, str], bytes]


class Recorded(NamedTuple):
    """One request as the stand-in saw it."""
    method: str
    path: str
    query: Dict[str, str]
    headers: Dict[str, str]
    body: bytes
    raw_target: str  # the request target exactly as sent (path and query string)

    @property
    def form(self) -> Dict[str, str]:
        return dict(parse_qsl(self.body.decode()))


def json_reply(data, status: int = 200) -> Reply:
    return status, {"Content-Type": "application/json"}, json.dumps(data).encode()


def text_reply(text: str, status: int = 200, content_type: str = "text/plain; charset=utf-8") -> Reply:
    return status, {"Content-Type": content_type}, text.encode() if isinstance(text, str) else text


class StandIn:
    """A real HTTP server answering `handler(request)`; `requests` lists what it received."""

    def __init__(self, handler: Callable[[Recorded], Reply] = lambda r: json_reply({})):
        self.handler = handler
        self.requests: List[Recorded] = []
        self.delay = 0.0  # seconds to wait before answering (to provoke timeouts)
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                request = Recorded(self.command, parts.path, dict(parse_qsl(parts.query)),
                                   dict(self.headers.items()), self.rfile.read(length), self.path)
                stand_in.requests.append(request)
                if stand_in.delay:
                    time.sleep(stand_in.delay)
                status, headers, body = stand_in.handler(request)
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the caller gave up waiting

            do_GET = do_POST = do_PUT = _serve

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        # a short poll keeps stop() quick
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                       kwargs={"poll_interval": 0.05})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "StandIn":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "StandIn":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def nothing_listening() -> str:
    """A loopback URL where no server listens (connection refused: an offline upstream)."""
    return f"http://127.0.0.1:{free_port()}"


@contextlib.contextmanager
def paired_client(store, config, server, folder, uuid: str = None):
    """The real `PersonalBackend` of a device paired with `server` (and holding the admin
    key), its identity in `folder`; the client's identity singleton is put back afterwards."""
    from ovos_skill_personal_backend.backend import pairing

    login = pairing.pair_directly(store, config, uuid)
    path = folder / f"identity-{login['uuid']}.json"
    path.write_text(json.dumps({"uuid": login["uuid"], "access": login["accessToken"],
                                "refresh": login["refreshToken"],
                                "expires_at": time.time() + login["expiration"]}))
    with identity_file(path):
        client = device_backend(server.url, path)
        client.credentials["admin"] = config["server"]["admin_key"]
        client.login = login
        yield client
