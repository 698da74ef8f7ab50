"""BackendServer (waitress in a thread, as the skill runs it) and the app's HTTP error answers."""
import os
import socket
import threading
import time

import pytest
import requests
from flask import Flask

from conftest import free_port, make_config
from helpers import bearer, raw_pair, serve
from ovos_skill_personal_backend.backend.server import BackendServer


def _refused(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_start_binds_and_serves(app):
    server = BackendServer(app, "127.0.0.1", 0).start()
    try:
        assert server.running and server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}"
        answer = requests.get(server.url + "/", timeout=10)
        assert answer.status_code == 200 and answer.json()["status"] == "ok"
        assert server.start() is server  # already running: nothing happens
    finally:
        server.stop()


def _cpu_seconds(native_thread_id: int) -> float:
    """CPU time (user + system) one thread of this process has used, from /proc."""
    with open(f"/proc/self/task/{native_thread_id}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs Linux /proc")
def test_an_idle_server_does_not_spin(app):
    """The event loop must sleep in select() while idle (a 0 s timeout spun a core at 100%)."""
    server = BackendServer(app, "127.0.0.1", 0).start()
    try:
        loop_thread = server._thread.native_id
        before = _cpu_seconds(loop_thread)
        time.sleep(1.5)
        used = _cpu_seconds(loop_thread) - before
        print(f"\nidle event loop used {used * 1000:.0f} ms of CPU in 1.5 s")
        assert used < 0.3
    finally:
        server.stop()


def test_start_on_a_taken_port_raises_oserror(app):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = BackendServer(app, "127.0.0.1", taken.getsockname()[1])
        with pytest.raises(OSError):
            server.start()
        assert not server.running
        server.stop()  # harmless on a server that never started


def test_stop_is_quick_frees_the_port_is_idempotent_and_restartable(app):
    port = free_port()
    server = BackendServer(app, "127.0.0.1", port).start()
    session = requests.Session()  # a kept-alive connection must not hold stop() up
    assert session.get(f"{server.url}/", timeout=10).status_code == 200

    started = time.monotonic()
    server.stop()
    took = time.monotonic() - started
    print(f"\nBackendServer.stop() took {took * 1000:.0f} ms with a kept-alive client connection")
    assert took < 1.0  # the skill stops it on shutdown: it must not hang the loader
    assert not server.running and _refused(port)
    with socket.socket() as s:  # no listener is left: another server can bind it
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()
    server.stop()
    server.stop()

    server.start()  # the same object serves again, on the same port
    try:
        assert server.port == port
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 200
    finally:
        server.stop()
    assert _refused(port)


def test_stop_does_not_wait_for_a_slow_request():
    """A request stuck on a slow upstream must not hold up the skill's shutdown."""
    app, release = Flask("slow"), threading.Event()
    app.add_url_rule("/slow", "slow", lambda: "done" if release.wait(30) else "timeout")
    server = BackendServer(app, "127.0.0.1", 0).start()
    answers = []
    client = threading.Thread(target=lambda: answers.append(_get_or_error(server.url + "/slow")))
    client.start()
    time.sleep(0.3)  # the request is in a worker now
    started = time.monotonic()
    server.stop()
    took = time.monotonic() - started
    release.set()
    client.join(30)
    print(f"\nBackendServer.stop() took {took * 1000:.0f} ms with a request in progress")
    assert took < 1.0
    assert answers == ["connection closed"]


def _get_or_error(url: str) -> str:
    try:
        return requests.get(url, timeout=30).text
    except requests.ConnectionError:
        return "connection closed"


# HTTP errors are JSON -----------------------------------------------------------------

@pytest.mark.parametrize("path", ["/nope", "/v1/nope", "/v2/device/code", "/v1/device/x/y/z"])
def test_unknown_route_is_json_404(live_server, path):
    answer = requests.get(live_server.url + path, timeout=10)
    assert answer.status_code == 404 and answer.json()["error"]


@pytest.mark.parametrize("method, path", [("DELETE", "/v1/device/code"), ("PUT", "/v1/device/code"),
                                          ("POST", "/v1/auth/token"), ("POST", "/v1/device/{uuid}/setting")])
def test_wrong_method_is_json_405(live_server, method, path):
    login = raw_pair(live_server.url)
    answer = requests.request(method, live_server.url + path.format(uuid=login["uuid"]),
                              headers=bearer(login["accessToken"]), timeout=10)
    assert answer.status_code == 405 and answer.json()["error"]
    assert method not in answer.headers["Allow"]


def test_body_over_max_body_mb_is_json_413(tmp_path):
    with serve(make_config(tmp_path / "data", max_body_mb=1)) as server:
        login = raw_pair(server.url)
        skill = f"{server.url}/v1/device/{login['uuid']}/skill"
        for size in (1024 * 1024 + 1, 1_900_000):
            answer = requests.put(skill, data=b"x" * size, headers=bearer(login["accessToken"]), timeout=30)
            assert answer.status_code == 413 and answer.json()["error"], size
        # activation errors are plain text on purpose (a device saves a JSON answer as its login)
        answer = requests.post(f"{server.url}/v1/device/activate", data=b"x" * 1_500_000, timeout=30)
        assert answer.status_code == 413 and answer.headers["Content-Type"].startswith("text/plain")
        # just under the limit the body reaches the route (labelled JSON, as a device labels it)
        answer = requests.put(skill, data=b"x" * 1_000_000, timeout=30,
                              headers={**bearer(login["accessToken"]), "Content-Type": "application/json"})
        assert answer.status_code == 400 and "JSON" in answer.json()["error"]


@pytest.mark.parametrize("connection", ["", "close"])
def test_a_304_keeps_the_connection_open_unless_asked_to_close(live_server, connection):
    """waitress closes after every answer without a Content-Length, 304s included: each
    conditional poll of a device then cost it a new connection."""
    import http.client
    login = raw_pair(live_server.url)
    path = f"/v1/device/{login['uuid']}/setting"
    headers = bearer(login["accessToken"])
    conn = http.client.HTTPConnection("127.0.0.1", live_server.port, timeout=10)
    conn.request("GET", path, headers=headers)
    first = conn.getresponse()
    first.read()
    sock = conn.sock
    extra = {"Connection": connection} if connection else {}
    conn.request("GET", path, headers={**headers, **extra, "If-None-Match": first.getheader("ETag")})
    second = conn.getresponse()
    assert second.status == 304 and second.read() == b""
    assert (second.getheader("Connection") == "close") == (connection == "close")
    if not connection:
        conn.request("GET", path, headers=headers)  # the same socket serves the next poll
        assert conn.getresponse().status == 200 and conn.sock is sock
    conn.close()
