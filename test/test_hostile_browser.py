"""A web page the owner visits attacks the backend through the owner's browser (issue 15:
DNS rebinding, cookie riding from another port, form machinery, logout). Each test
replays the attack against the real waitress server (or the Flask app where only the
page's forms are involved) and checks it is refused with nothing changed, while the
real clients and the owner's own page keep working."""
import json
import re
import uuid as uuidlib
from html.parser import HTMLParser
from typing import List, Tuple

import pytest
import requests
from werkzeug.datastructures import MultiDict

from browser import Browser
from conftest import ADMIN_KEY, free_port, make_config
from helpers import (admin_headers, bearer, pair, raw_pair,
                     restore_identity, serve)  # noqa: F401 (restore_identity: a fixture)
from ovos_skill_personal_backend.backend import create_app, devices, pairing, skill_settings

pytestmark = pytest.mark.usefixtures("restore_identity")


@pytest.fixture
def app(config, store, tmp_path):
    """The app with its own config file: pages that change the config write it there."""
    return create_app(config, store, config_path=str(tmp_path / "ovos_backend.conf"))


def _port(server) -> int:
    return int(server.url.rsplit(":", 1)[1])


# DNS rebinding: the Host allow-list ---------------------------------------------------------

def _as_host(server, host: str, method: str = "GET", path: str = "/", **kwargs) -> requests.Response:
    """A request to `server` as a browser sends it after `host` was rebound to its address."""
    headers = {"Host": host, **kwargs.pop("headers", {})}
    return requests.request(method, server.url + path, headers=headers, timeout=10,
                            allow_redirects=False, **kwargs)


REBOUND = ["evil.example:{port}", "evil.example", "127.0.0.1.nip.io:{port}",
           "localhost.evil.example:{port}", "EVIL.example.:{port}"]
ROUTES = [("GET", "/v1/device/code?state=0123456789abcdef"), ("GET", "/admin/"),
          ("GET", "/admin/login"), ("POST", "/admin/login"), ("GET", "/admin/static/style.css"),
          ("GET", "/"), ("GET", "/v1/admin/pairings"), ("POST", "/v1/device/activate"),
          ("POST", "/precise/upload"), ("POST", "/stt"), ("GET", "/openapi.json")]


@pytest.mark.parametrize("host", REBOUND)
def test_a_rebound_name_is_misdirected_on_every_route(live_server, store, host):
    for method, path in ROUTES:
        answer = _as_host(live_server, host.format(port=_port(live_server)), method, path,
                          headers=admin_headers())
        assert answer.status_code == 421, (method, path, answer.status_code)
        assert answer.json()["error"] and "Location" not in answer.headers, (method, path)
    assert not pairing.pending(store) and not store.devices  # nothing was issued


def test_the_admin_page_never_redirects_to_a_foreign_host(live_server):
    answer = _as_host(live_server, f"evil.example:{_port(live_server)}", path="/admin")
    assert answer.status_code == 421 and "evil.example" not in answer.headers.get("Location", "")


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST.:{port}",
                                  "[::1]:{port}", "127.8.9.10:{port}", "192.168.1.20:{port}",
                                  "[fd00::20]:{port}", "kitchen.localhost:{port}", "127.0.0.1"])
def test_loopback_names_and_addresses_are_answered(live_server, host):
    """An address is never a rebound name: a browser sends it only for a page loaded
    from that very address (the LAN address of a 0.0.0.0 server among them)."""
    answer = _as_host(live_server, host.format(port=_port(live_server)), path="/v1/device/code?state=0123456789abcdef")
    assert answer.status_code == 200 and answer.json()["code"]


def test_names_the_owner_configured_are_answered(tmp_path):
    config = make_config(tmp_path / "data", url="https://Voice.Home.Arpa/backend",
                         allowed_hosts=["pi.lan", "Backend.Example."])
    with serve(config) as server:
        for host in ("voice.home.arpa", "voice.home.arpa:443", "pi.lan:6712", "backend.example"):
            assert _as_host(server, host).status_code == 200, host
        assert _as_host(server, "evil.example").status_code == 421


def test_allowed_hosts_must_be_names(tmp_path):
    from ovos_skill_personal_backend.backend.config import ConfigError
    for bad in (["pi.lan", ""], ["pi lan"], [7], "pi.lan"):
        with pytest.raises(ConfigError, match="server.allowed_hosts"):
            make_config(tmp_path / "data", allowed_hosts=bad)


# JSON routes refuse the content types a page may send without asking (CORS "simple") -------

SIMPLE_TYPES = ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=x", None]


@pytest.mark.parametrize("content_type", SIMPLE_TYPES)
def test_activation_from_a_page_is_refused(live_server, store, content_type):
    state = str(uuidlib.uuid4())
    code = requests.get(f"{live_server.url}/v1/device/code", params={"state": state}, timeout=10).json()
    body = json.dumps({"state": state, "token": code["token"]}).encode()
    answer = requests.post(f"{live_server.url}/v1/device/activate", data=body, timeout=10,
                           headers={"Content-Type": content_type} if content_type else {})
    assert answer.status_code == 415, answer.text
    assert answer.headers["Content-Type"].startswith("text/plain")  # activation refusals stay plain
    assert not store.devices


def test_the_real_client_still_pairs_and_syncs(live_server, tmp_path):
    device = pair(live_server.url, tmp_path / "identity.json")
    assert device.device_get()["uuid"]
    assert device.device_upload_skills_data({"skills": []}).status_code == 200


@pytest.mark.parametrize("content_type", SIMPLE_TYPES)
def test_json_routes_refuse_simple_content_types(live_server, content_type):
    login = raw_pair(live_server.url)
    headers = {"Content-Type": content_type} if content_type else {}
    for path, auth in ((f"/v1/device/{login['uuid']}/skillJson", bearer(login["accessToken"])),
                       (f"/v1/admin/{login['uuid']}/prefs", admin_headers())):
        answer = requests.put(live_server.url + path, data=b'{"skills": []}', timeout=10,
                              headers={**auth, **headers})
        assert answer.status_code == 415 and "application/json" in answer.json()["error"], path


def test_json_with_a_charset_or_a_json_suffix_is_json(live_server):
    login = raw_pair(live_server.url)
    for content_type in ("application/json; charset=utf-8", "application/vnd.ovos+json"):
        answer = requests.put(f"{live_server.url}/v1/device/{login['uuid']}/skillJson", data=b'{"skills": []}',
                              headers={**bearer(login["accessToken"]), "Content-Type": content_type},
                              timeout=10)
        assert answer.status_code == 200, content_type


# cookie riding: Origin and Sec-Fetch-Site on every admin-page POST -------------------------------

def _csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _login(server) -> Tuple[requests.Session, str]:
    """The owner's browser, logged in: its session and the page's CSRF token."""
    session = requests.Session()
    token = _csrf(session.get(f"{server.url}/admin/login", timeout=10).text)
    answer = session.post(f"{server.url}/admin/login", data={"admin_key": ADMIN_KEY, "csrf_token": token},
                          allow_redirects=False, timeout=10)
    assert answer.status_code == 302
    return session, _csrf(session.get(f"{server.url}/admin/", timeout=10).text)


def _switch_pairing(server, session, token: str, headers: dict) -> requests.Response:
    return session.post(f"{server.url}/admin/pairing-mode", data={"mode": "confirm", "csrf_token": token},
                        headers=headers, allow_redirects=False, timeout=10)


@pytest.mark.parametrize("headers", [
    {"Origin": "http://127.0.0.1:{other}"},                      # another port: another origin
    {"Origin": "http://127.0.0.1:{other}", "Sec-Fetch-Site": "same-site"},
    {"Sec-Fetch-Site": "same-site"},                              # Origin stripped
    {"Sec-Fetch-Site": "cross-site"},
    {"Origin": "null"},                                           # sandboxed frame, data: URL
    {"Origin": "https://127.0.0.1:{port}"},                       # another scheme
    {"Origin": "http://evil.example:{port}"}])
def test_a_form_from_another_origin_is_refused_even_with_the_token(live_server, config, headers):
    session, token = _login(live_server)
    values = {"port": _port(live_server), "other": free_port()}
    answer = _switch_pairing(live_server, session, token, {k: v.format(**values) for k, v in headers.items()})
    assert answer.status_code == 403 and "another site" in answer.text
    assert config["server"]["pairing"] == "auto"


@pytest.mark.parametrize("headers", [{"Origin": "http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"},
                                     {"Origin": "http://127.0.0.1:{port}"},
                                     {"Sec-Fetch-Site": "same-origin"},
                                     {}])  # an old browser: the CSRF token decides, as before
def test_the_owners_own_forms_are_accepted(live_server, config, headers):
    session, token = _login(live_server)
    answer = _switch_pairing(live_server, session, token,
                             {k: v.format(port=_port(live_server)) for k, v in headers.items()})
    assert answer.status_code == 302 and config["server"]["pairing"] == "confirm"


def test_a_form_without_the_token_is_still_refused(live_server, config):
    session, _ = _login(live_server)
    answer = _switch_pairing(live_server, session, "", {"Origin": live_server.url, "Sec-Fetch-Site": "same-origin"})
    assert answer.status_code == 400 and config["server"]["pairing"] == "auto"


def test_the_configured_public_origin_is_the_same_origin(tmp_path):
    """Behind an https proxy the browser's Origin is the public URL, not the address the
    backend sees: the owner's forms must still be accepted there."""
    config = make_config(tmp_path / "data", url="https://voice.home.arpa")
    with serve(config) as server:
        session, token = _login(server)
        assert _switch_pairing(server, session, token, {"Origin": "https://voice.home.arpa"}).status_code == 302
        assert _switch_pairing(server, session, token, {"Origin": "http://voice.home.arpa"}).status_code == 403


# a settings field cannot collide with the form's own fields ----------------------------------

class _Form(HTMLParser):
    """What a browser submits for the page's settings form (`#skill-form`)."""

    def __init__(self):
        super().__init__()
        self.fields: List[Tuple[str, str]] = []
        self._inside = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self._inside = attrs.get("id") == "skill-form"
        elif self._inside and tag == "input" and attrs.get("name"):
            if attrs.get("type") != "checkbox" or "checked" in attrs:
                self.fields.append((attrs["name"], attrs.get("value") or ""))

    def handle_endtag(self, tag):
        if tag == "form":
            self._inside = False


def _submitted(html: str, button: Tuple[str, str]) -> List[Tuple[str, str]]:
    parser = _Form()
    parser.feed(html)
    return parser.fields + [button]


COLLIDING = {"skillMetadata": {"sections": [{"name": "Tricky", "fields": [
    {"name": "csrf_token", "type": "text", "label": "Token", "value": "device-value"},
    {"name": "action", "type": "text", "label": "Action", "value": "reset"},
    {"name": "_clear_secret", "type": "text", "label": "Clear", "value": "api_key"},
    {"name": "api_key", "type": "password", "label": "Key", "value": "keep-me"}]}]}}


def _save_as_the_page_shows(owner: Browser, path: str) -> None:
    form = _submitted(owner.get(path).get_data(as_text=True), ("action", "save"))
    answer = owner.client.post(path, data=MultiDict(form))
    assert answer.status_code == 302, answer.get_data(as_text=True)


def test_settings_named_like_form_fields_are_saved_as_typed(client, store, config):
    """The owner presses Save on a form whose device-defined fields are named like the
    form's own: the CSRF token, the submit button, the "clear" boxes."""
    device = pairing.pair_directly(store, config)
    uuid = device["uuid"]
    skill_settings.upload_meta(store, uuid, {"skill_gid": f"@{uuid}|skill-tricky.x", **COLLIDING})
    uploaded = skill_settings.shared_get(store, "skill-tricky.x")["settings"]
    skill_settings.shared_put(store, "skill-tricky.x", settings={**uploaded, "api_key": "keep-me"})
    owner = Browser(client)
    assert owner.login().status_code == 302
    expected = {"csrf_token": "device-value", "action": "reset", "_clear_secret": "api_key",
                "api_key": "keep-me"}
    _save_as_the_page_shows(owner, "/admin/skills/shared/skill-tricky.x")
    shared = skill_settings.shared_get(store, "skill-tricky.x")
    assert shared["settings"] == expected and owner.csrf() not in json.dumps(shared)
    _save_as_the_page_shows(owner, f"/admin/skills/device/{uuid}/skill-tricky.x")  # not a reset
    assert skill_settings.device_get(store, uuid, "skill-tricky.x")["settings"] == expected
    assert "skill-tricky.x" in devices.get(store, uuid)["skills"]  # its own copy now


# logout ends the session on the server ------------------------------------------------------

def test_a_copied_cookie_is_dead_after_logout(live_server, config):
    session, token = _login(live_server)
    copied = requests.Session()
    copied.cookies.update(session.cookies)
    assert copied.get(f"{live_server.url}/admin/", allow_redirects=False, timeout=10).status_code == 200
    answer = session.post(f"{live_server.url}/admin/logout", data={"csrf_token": token},
                          allow_redirects=False, timeout=10)
    assert answer.status_code == 302
    page = copied.get(f"{live_server.url}/admin/", allow_redirects=False, timeout=10)
    assert page.status_code == 302 and page.headers["Location"].startswith("/admin/login")
    assert _switch_pairing(live_server, copied, token, {}).status_code in (302, 400)
    assert config["server"]["pairing"] == "auto"
    assert copied.get(f"{live_server.url}/admin/pending.json", timeout=10).status_code == 401


def test_logging_in_again_gives_a_new_session(live_server):
    first, _ = _login(live_server)
    second, token = _login(live_server)
    assert first.get(f"{live_server.url}/admin/", allow_redirects=False, timeout=10).status_code == 200
    second.post(f"{live_server.url}/admin/logout", data={"csrf_token": token}, timeout=10)
    assert first.get(f"{live_server.url}/admin/", allow_redirects=False, timeout=10).status_code == 200
