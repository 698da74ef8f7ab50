"""Which `Host` names the backend answers to: its defence against DNS rebinding.

A web page on evil.example can make its own name resolve to 127.0.0.1 or to this
machine's LAN address (DNS rebinding); the browser then counts the backend as part of
the page's site and lets the page read its answers: pair a device, read what devices
read. The browser still sends `Host: evil.example`, so answering only names the owner
uses closes that on every route at once.

Accepted, the port ignored:
* any IP address: a browser sends one only for a page loaded from that very address,
  which no other site can be (this covers loopback, the bound address and every LAN
  address of a 0.0.0.0 server, however many interfaces it has);
* `localhost` and `*.localhost` (browsers resolve those themselves, RFC 6761);
* the host of `server.url`, `server.host` when it is a name, this machine's own name
  (and its mDNS `.local` name);
* the names in `server.allowed_hosts`.
Anything else gets a JSON 421 Misdirected Request. A request without a Host header
(HTTP/1.0) cannot come from a browser and is answered.
"""
import ipaddress
import socket
from functools import lru_cache
from typing import Optional, Set
from urllib.parse import urlsplit

from flask import Flask, Response, jsonify, request
from ovos_utils.log import LOG

from .api import get_config


def _normal(name: str) -> str:
    """A name as compared: lower case, without the root's trailing dot."""
    return name.strip().lower().rstrip(".")


def host_name(host_header: str) -> str:
    """The name in a Host header, without its port: `[::1]:80` -> `::1`."""
    if host_header.startswith("["):
        return _normal(host_header[1:].partition("]")[0])
    if host_header.count(":") == 1:
        host_header = host_header.partition(":")[0]
    return _normal(host_header)


@lru_cache(maxsize=256)  # asked at every request, mostly of the same few names
def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _configured_names(config: dict) -> Set[str]:
    """The names the owner gave the backend (read per request: the admin may change them)."""
    server = config["server"]
    names = {_normal(urlsplit(server["url"]).hostname or ""), _normal(server["host"])}
    machine = _normal(socket.gethostname())
    names.update({machine, machine + ".local"}, (_normal(name) for name in server["allowed_hosts"]))
    names.discard("")
    return names


def allowed(name: str, config: dict) -> bool:
    """Whether a request addressed to `name` (from `host_name`) is meant for this backend."""
    return (_is_address(name) or name == "localhost" or name.endswith(".localhost")
            or name in _configured_names(config))


def refuse_foreign_host() -> Optional[Response]:
    """A `before_request` hook: 421 for a Host the backend does not answer to."""
    header = request.environ.get("HTTP_HOST")
    if header is None or allowed(host_name(header), get_config()):
        return None
    # debug only: a stranger's page can send these by the thousand
    LOG.debug(f"refused a request for host {header[:100]!r} from {request.remote_addr}: "
              "not a name of this backend (add it to server.allowed_hosts if it is)")
    response = jsonify({"error": "this server does not answer to that host name; "
                                 "its owner can add it to server.allowed_hosts"})
    response.status_code = 421
    return response


def init_app(app: Flask) -> None:
    app.before_request(refuse_foreign_host)
