"""The adversarial suite (issue 6): a fuzzer on every route, a battery of hostile
requests, brute force, floods of legitimate pairings, slow clients.

Targets: no response >= 500 (except the documented upstream answers below), no auth
bypass, nothing stored damaged, slow clients do not block others.

* The fuzzer is schemathesis, driven by the server's own /openapi.json: every operation,
  with valid and invalid data (hypothesis), as its rightful caller (a paired device, the
  admin key, a logged-in admin page session), with no credentials, and with the wrong ones.
* Every hostile request of the battery is sent as raw bytes over a socket (lone
  surrogates, `..` and giant headers reach the server exactly as written) and must get
  its exact 4xx with a JSON `{"error"}` body, or plain text where the client needs it
  (device 401s and refused activations: see backend/api/__init__.py and auth.py).

Fast by default (part of the normal run: 8 valid examples per operation for its rightful
caller); `LONG=1` fuzzes 100 (`PB_FUZZ_EXAMPLES` sets any number).
"""
import base64
import http.client
import json
import os
import re
import socket
import threading
import time
import uuid as uuidlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple
from urllib.parse import unquote

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from conftest import ADMIN_KEY, SANDBOX, make_config
from helpers import assert_json_files_parse, data_files, raw_pair, serve
from ovos_skill_personal_backend.backend import (create_app, datasets, definitions, devices,
                                                 metrics, pairing, ratelimit, skill_settings)
from ovos_skill_personal_backend.backend.api import openapi
from ovos_skill_personal_backend.backend.server import BackendServer
from ovos_skill_personal_backend.backend.services import oauth
from ovos_skill_personal_backend.backend.store import Store, check_storable
from standins import nothing_listening

set_hypothesis_home_dir(os.path.join(SANDBOX, "hypothesis"))  # its caches, not in test/
LONG = bool(os.environ.get("LONG"))
# valid examples per operation for its rightful caller; the other modes get fewer
EXAMPLES = int(os.environ.get("PB_FUZZ_EXAMPLES", 100 if LONG else 8))
# the routes whose openapi entry names an `upstream` (weather, Wolfram|Alpha, e-mail, OAuth
# token refresh and callback, STT) may answer these, and only these, >= 500: 502 the upstream
# failed or is unreachable, 503 it is not configured (no key, no SMTP server, no STT plugin),
# 504 it did not answer in time (backend/errors.py, services/fetch.py). Every other route < 500.
UPSTREAM_STATUSES = (502, 503, 504)
# operations the rightful caller does not fuzz: they would change the run's own setup
# (the admin key, upstream URLs, the admin page session); their hostile input is in the battery
NOT_FUZZED_BY_OWNER = ("admin.update_backend_config", "web.config_save", "web.logout")
OTHER_ADDRESS = "127.0.0.2"  # another client on this machine (all of 127/8 is loopback)


# the target: a live server, a paired device, the admin key, unreachable upstreams ------------

@dataclass
class Target:
    server: BackendServer
    app: object
    config: dict
    store: Store
    data_path: str
    device: dict  # the login of a device paired over HTTP (its tokens change if rotated)
    victim: str  # a second device, for the admin routes to act on

    @property
    def url(self) -> str:
        return self.server.url

    def device_headers(self) -> dict:
        return {"Authorization": f"Bearer {self.device['accessToken']}"}


@pytest.fixture
def loopback_only(monkeypatch):
    """No name but the loopback resolves: whatever the fuzzer configures (an OAuth
    endpoint, an upstream URL), nothing leaves this machine."""
    real = socket.getaddrinfo

    def guarded(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost", "::1", OTHER_ADDRESS):
            raise socket.gaierror(socket.EAI_NONAME, "the adversarial suite allows no network")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


@pytest.fixture
def target(tmp_path, loopback_only):
    config = make_config(tmp_path / "data")
    config["microservices"].update(owm_key="fuzz-owm-key", wolfram_key="fuzz-wolfram-key",
                                   owm_url=nothing_listening(), wolfram_url=nothing_listening(),
                                   cache="memory", timeout=2.0)
    # every fuzzed question is a distinct upstream call: the per-device quota on those has
    # its own test (test_hostile_quotas.py), here it would refuse the rightful device
    config["quotas"]["upstream_misses_per_hour"] = 10 ** 6
    store = Store(config["data_path"])
    app = create_app(config, store, config_path=str(tmp_path / "backend.conf"))
    server = BackendServer(app, "127.0.0.1", 0).start()
    try:
        victim = pairing.pair_directly(store, config)["uuid"]
        login = raw_pair(server.url)
        # the device's first contact is stored at once (later ones every 10 minutes): made
        # here, so that the tests that compare the data before and after see only theirs
        requests.get(f"{server.url}/v1/device/{login['uuid']}", timeout=30,
                     headers={"Authorization": f"Bearer {login['accessToken']}"}).raise_for_status()
        yield Target(server, app, config, store, config["data_path"], login, victim)
    finally:
        server.stop()


def snapshot(folder) -> Dict[str, bytes]:
    """Every file under `folder`, by relative path."""
    return {os.path.relpath(path, folder): open(path, "rb").read() for path in data_files(folder)}


def assert_store_intact(target: Target) -> int:
    """Every data file parses, none was rejected or left half-written, and every record,
    loaded afresh, reads into the shapes the API answers with. Returns the device count."""
    names = [os.path.basename(path) for path in data_files(target.data_path)]
    assert not [n for n in names if ".rejected-" in n or ".tmp-" in n], names
    assert_json_files_parse(target.data_path)
    fresh = Store(target.data_path)
    for record in fresh.devices.all().values():
        check_storable(record)
        for read in (devices.wire_info, devices.wire_settings):
            read(record)
        devices.admin_view(fresh, record)
        for read in (skill_settings.v1_list, skill_settings.v2_map):
            read(fresh, record)
        skill_settings.device_list(fresh, record["uuid"])
    for read in (skill_settings.shared_list, metrics.search, oauth.token_rows):
        read(fresh)
    oauth.app_rows(target.config, fresh)
    for kind in (definitions.WAKE_WORD, definitions.VOICE):
        definitions.list_all(fresh, kind)
    for kind in (datasets.UTTERANCES, datasets.WAKEWORDS):
        for recording in datasets.list_all(fresh, kind):
            datasets.admin_view(fresh, kind, recording, with_audio=True)
    return len(fresh.devices)


def request_from(address: str, url: str, method: str = "GET", headers: Optional[dict] = None,
                 body: Optional[bytes] = None) -> Tuple[int, dict, bytes]:
    """A request whose source address is `address` (to show limits are per address)."""
    parts = requests.utils.urlparse(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30,
                                            source_address=(address, 0))
    try:
        connection.request(method, parts.path + (f"?{parts.query}" if parts.query else ""),
                           body=body, headers=headers or {})
        answer = connection.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()
    finally:
        connection.close()


# the fuzzer ---------------------------------------------------------------------------------

ROUTING_ERRORS = {404: NotFound.description, 405: MethodNotAllowed.description}


@dataclass
class Fuzz:
    """Runs schemathesis cases against the target and collects what went wrong."""
    target: Target
    session: requests.Session = field(default_factory=requests.Session)
    statuses: Counter = field(default_factory=Counter)
    problems: List[str] = field(default_factory=list)
    owner_refusals: Counter = field(default_factory=Counter)
    reached: set = field(default_factory=set)  # operations the rightful caller got a 2xx/3xx from

    def call(self, case, endpoint: str, spec: dict, mode: str, headers: dict,
             session: Optional[requests.Session] = None) -> None:
        response = case.call(base_url=self.target.url, session=session or self.session,
                             headers=headers, timeout=30, allow_redirects=False)
        routed = _routed_endpoint(self.target.app, case)
        if routed not in (None, endpoint):  # an id made the path another route's
            endpoint, spec = routed, openapi.entry(self.target.app, routed, case.method.upper())
        self.statuses[(mode, response.status_code)] += 1
        if mode == "owner" and response.status_code < 400:
            self.reached.add(endpoint)
        if endpoint == "auth.refresh_token" and response.status_code == 200:
            self.target.device = response.json()  # the fuzzer rotated the device's tokens
        for problem in self.check(endpoint, spec, mode, response):
            self.problems.append(f"{problem}: {mode} {case.method} {case.formatted_path} "
                                 f"query={case.query!r:.200} body={case.body!r:.200} -> "
                                 f"{response.status_code} {response.content[:200]!r}")

    def check(self, endpoint: str, spec: dict, mode: str, response) -> List[str]:
        status, problems = response.status_code, []
        if status >= 500 and not (spec["upstream"] and status in UPSTREAM_STATUSES):
            problems.append("SERVER ERROR")
        if ADMIN_KEY.encode() in response.content:
            problems.append("ADMIN KEY LEAKED")
        if spec["auth"] in ("device", "admin") and mode != "owner":
            if status < 400:
                problems.append("AUTH BYPASS")
            elif status not in (401, 429) and not _routing_error(response):
                problems.append(f"{status} instead of 401 without credentials")
        if spec["auth"] == "session" and mode != "owner" and (
                status < 300 or (status < 400 and "/admin/login" not in _header(response, "location"))):
            problems.append("AUTH BYPASS (admin page)")
        if spec["auth"] in ("device", "admin") and mode == "owner" and status in (401, 403, 429):
            self.owner_refusals[endpoint] += 1  # the fuzzer did not get past the guard
        if 400 <= status < 500 and spec["refusals"] != "text/html":
            problems += _refusal_format(endpoint, spec, status, response)
        return problems


def _routed_endpoint(app, case) -> Optional[str]:
    """The endpoint the server routed the case to: an id can make a path another route's
    (`/auth/{oauth_id}/auth_url` with the id "callback" is `/auth/callback/{token_id}`)."""
    try:
        endpoint, _ = app.url_map.bind("localhost").match(unquote(case.formatted_path),
                                                          case.method.upper())
    except HTTPException:  # not found, wrong method, a redirect: no view was reached
        return None
    return endpoint


def _header(response, name: str) -> str:
    """A header of a schemathesis response (lower-case names, lists of values)."""
    return ", ".join(response.headers.get(name, []))


def _routing_error(response) -> bool:
    """Flask's own 404/405: the path did not reach a view (e.g. an id holding a '/')."""
    return response.status_code in ROUTING_ERRORS and \
        _header(response, "content-type").startswith("application/json") and \
        response.json() == {"error": ROUTING_ERRORS[response.status_code]}


def _refusal_format(endpoint: str, spec: dict, status: int, response) -> List[str]:
    content_type = _header(response, "content-type")
    if (spec["auth"] == "device" and status == 401) or spec["refusals"] == "text/plain":
        return [] if content_type.startswith("text/plain") else ["refusal not plain text"]
    if endpoint == "upstream.oauth_token" and status == 404 and response.text.strip() == "null":
        return []  # "no token" is JSON null on purpose (see upstream.oauth_token)
    try:
        body = response.json()
    except ValueError:
        return ["refusal not JSON"]
    return [] if isinstance(body, dict) and isinstance(body.get("error"), str) else \
        ["refusal without an error message"]


def _credentials(target: Target, auth: Optional[str], mode: str) -> dict:
    """Authorization for `mode`: the rightful one, none, or the other kind's."""
    device = target.device_headers()
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    if mode == "owner":
        return {"device": device, "admin": admin}.get(auth, {})
    if mode == "crossed":
        return {"device": admin, "admin": device}[auth]
    return {}


def _login(target: Target) -> Tuple[requests.Session, str]:
    """A logged-in admin page session and its CSRF token."""
    session = requests.Session()
    token = _csrf(session.get(f"{target.url}/admin/login", timeout=30).text)
    answer = session.post(f"{target.url}/admin/login", timeout=30, allow_redirects=False,
                          data={"admin_key": ADMIN_KEY, "csrf_token": token})
    assert answer.status_code == 302, answer.text
    return session, _csrf(session.get(f"{target.url}/admin/", timeout=30).text)


def _csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def seed(target: Target) -> Dict[str, str]:
    """One record of each kind the admin routes address by id; {path parameter: id}."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}

    def send(method: str, path: str, body: dict) -> dict:
        answer = requests.request(method, f"{target.url}/v1/admin/{path}", json=body,
                                  headers=admin, timeout=30)
        assert answer.status_code == 200, (path, answer.text)
        return answer.json()

    examples = {name: spec["example"] for name, spec in openapi.OPERATIONS.items()}
    for kind in ("ww_defs", "voice_defs"):
        send("PUT", f"{kind}/fuzz-def", examples["admin.put_definition"])
    send("PUT", "skill_settings/fuzz-skill", examples["admin.update_shared_settings"])
    send("PUT", f"{target.victim}/skill_settings/fuzz-skill", examples["admin.update_device_settings"])
    send("POST", "oauth_apps", {**examples["admin_oauth.create_oauth_app"], "token_id": "fuzz-app"})
    send("PUT", "oauth_toks", {**examples["admin_oauth.create_token"], "token_id": "fuzz-app"})
    recording = examples["admin_records.create_recording"]
    confirm = {**target.config, "server": {**target.config["server"], "pairing": "confirm"}}
    pending = pairing.request_code(target.store, confirm, str(uuidlib.uuid4()))["code"]
    return {"uuid": target.victim, "code": pending, "key": "fuzz-def", "skill_id": "fuzz-skill",
            "app_id": "fuzz-app", "token_id": "fuzz-app", "oauth_id": "fuzz-app",
            "metric_id": send("POST", "metrics", examples["admin_records.create_metric"])["metric_id"],
            "voice_recs": send("POST", "voice_recs", recording)["recording_id"],
            "ww_recs": send("POST", "ww_recs", recording)["recording_id"]}


def _known(known: Dict[str, str], operation, auth: Optional[str], device_uuid: str) -> dict:
    """Path parameters naming seeded records (the device's own uuid on device routes)."""
    names = [p["name"] for p in operation.definition.raw.get("parameters", []) if p["in"] == "path"]
    kind = "voice_recs" if "/voice_recs/" in operation.path else "ww_recs"  # or the web page's
    values = {**known, "rec_id": known[kind], "kind": "wakewords"}
    if auth == "device":
        values["uuid"] = device_uuid
    return {name: values[name] for name in names if values.get(name)}


def _strategies(target: Target, known: Dict[str, str], operation, auth: Optional[str], mode: str):
    """(strategy, examples) to run for one operation in one mode: positive and negative
    data; for the rightful caller also seeded ids (always the device's own uuid on device
    routes) and the document's examples."""
    owner = mode == "owner"
    fixed = _known(known, operation, auth, target.device["uuid"]) if owner else {}
    owner_or_public = owner or auth is None
    budget = [(GenerationMode.POSITIVE, EXAMPLES if owner_or_public else max(1, EXAMPLES // 4)),
              (GenerationMode.NEGATIVE, max(1, EXAMPLES // 2) if owner_or_public else 1)]
    raw = operation.definition.raw
    typed_body = any(media != "application/x-www-form-urlencoded"
                     for media in raw.get("requestBody", {}).get("content", {}))
    if not typed_body and not any(p["in"] == "query" for p in raw.get("parameters", [])):
        budget.pop()  # nothing to make invalid but text: the path, a form's fields
    for generation, examples in budget:
        choices = [operation.as_strategy(generation_mode=generation)]
        if fixed:
            with_ids = operation.as_strategy(generation_mode=generation, path_parameters=fixed)
            choices = [with_ids] if auth == "device" and "uuid" in fixed else choices + [with_ids]
        yield st.one_of(*choices), examples
    if owner:
        for documented in operation.get_strategies_from_examples(fill_missing=True,
                                                                 path_parameters=fixed):
            yield documented, 1


def _modes(auth: Optional[str]) -> Tuple[str, ...]:
    return {"device": ("owner", "anonymous", "crossed"), "admin": ("owner", "anonymous", "crossed"),
            "session": ("owner", "anonymous")}.get(auth, ("anonymous",))


def fuzz_everything(target: Target) -> Fuzz:
    fuzz = Fuzz(target)
    document = requests.get(f"{target.url}/openapi.json", timeout=30).json()
    for methods in document["paths"].values():
        for operation in methods.values():
            # credentials are the suite's own modes (owner, anonymous, crossed): schemathesis
            # must not drop the Authorization header to test "missing credentials" itself
            operation.pop("security")
    schema = schemathesis.openapi.from_dict(document)
    known = seed(target)
    endpoints = {(path, method.upper()): endpoint
                 for path, method, endpoint, _ in openapi.routes(target.app)}
    # deletions last, so the other operations find the seeded records
    operations = sorted((result.ok() for result in schema.get_all_operations()), key=lambda op: (
        op.method.upper() == "DELETE" or op.path.endswith(("/unpair", "/delete"))))
    # the rightful callers first: once the wrong keys have been sent, this address is
    # rate limited on the admin API (and on the admin page's login) for a minute
    for phase in (("owner",), ("anonymous", "crossed")):
        for operation in operations:
            endpoint = endpoints[(operation.path, operation.method.upper())]
            spec = openapi.entry(target.app, endpoint, operation.method.upper())
            for mode in (m for m in _modes(spec["auth"]) if m in phase):
                if mode == "owner" and endpoint in NOT_FUZZED_BY_OWNER:
                    continue
                for strategy, examples in _strategies(target, known, operation, spec["auth"], mode):
                    _run(fuzz, strategy, examples, endpoint, spec, mode)
    return fuzz


def _run(fuzz: Fuzz, strategy, examples: int, endpoint: str, spec: dict, mode: str) -> None:
    session, csrf = _login(fuzz.target) if spec["auth"] == "session" and mode == "owner" else (None, "")

    @settings(max_examples=examples, deadline=None, database=None, derandomize=not LONG,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case):
        if csrf and isinstance(case.body, dict):
            case.body["csrf_token"] = csrf
        fuzz.call(case, endpoint, spec, mode, _credentials(fuzz.target, spec["auth"], mode), session)

    try:
        run()
    except Unsatisfiable:
        pass  # no invalid request exists for an operation without inputs


def test_fuzz_every_route(target):
    started = time.monotonic()
    fuzz = fuzz_everything(target)
    elapsed = time.monotonic() - started
    total = sum(fuzz.statuses.values())
    by_class = Counter(f"{status // 100}xx" for (_, status) in fuzz.statuses.elements())
    by_mode = Counter(mode for (mode, _) in fuzz.statuses.elements())
    operations = len({(p, m) for p, m, _, _ in openapi.routes(target.app)})
    print(f"\nfuzz: {total} requests to {operations} operations in {elapsed:.1f} s "
          f"({dict(by_mode)}); {dict(by_class)}; 5xx: "
          f"{dict(Counter(s for (_, s) in fuzz.statuses.elements() if s >= 500))}; "
          f"{len(fuzz.reached)} operations answered the rightful caller with a 2xx/3xx; "
          f"problems: {len(fuzz.problems)}")
    assert not fuzz.problems, "\n".join(fuzz.problems[:30])
    assert not fuzz.owner_refusals, f"the rightful caller was refused: {dict(fuzz.owner_refusals)}"
    assert assert_store_intact(target) >= 2
    # the device still works with its (possibly rotated) token, the admin key from elsewhere
    status, _, body = request_from("127.0.0.1", f"{target.url}/v1/device/{target.device['uuid']}",
                                   headers=target.device_headers())
    assert status == 200 and json.loads(body)["uuid"] == target.device["uuid"]
    status, _, _ = request_from(OTHER_ADDRESS, f"{target.url}/v1/admin/devices/list",
                                headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert status == 200


# the hostile battery ------------------------------------------------------------------------

SURROGATE = b"\xed\xa0\x80"  # U+D800 encoded as if it were a character: not valid UTF-8
JSON_TYPE = {"Content-Type": "application/json"}
DEVICE, ADMIN = {"Authorization": "Bearer {access}"}, {"Authorization": "Bearer {admin}"}
DEVICE_JSON, ADMIN_JSON = {**DEVICE, **JSON_TYPE}, {**ADMIN, **JSON_TYPE}


def _nested(depth: int) -> bytes:
    return b'{"ww_config": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"


# (what, method, path, headers, body, expected status, "json", "text" or "html" (the admin page's error page))
HOSTILE = [
    # malformed JSON
    ("truncated JSON", "PATCH", "/v1/device/{uuid}", DEVICE_JSON, b'{"coreVersion": ', 400, "json"),
    ("single quotes", "PUT", "/v1/admin/{uuid}/device", ADMIN_JSON, b"{'name': 'x'}", 400, "json"),
    ("not UTF-8", "PUT", "/v1/device/{uuid}/skill", DEVICE_JSON, b"\xff\xfe{}", 400, "json"),
    ("JSON null", "PUT", "/v1/device/{uuid}/skillJson", DEVICE_JSON, b"null", 400, "json"),
    ("100000 open brackets", "POST", "/v1/admin/config", ADMIN_JSON, b"[" * 100000, 400, "json"),
    ("nested 100 deep", "PUT", "/v1/admin/{uuid}/prefs", ADMIN_JSON, _nested(100), 400, "json"),
    ("nested 900 deep", "PUT", "/v1/admin/{uuid}/prefs", ADMIN_JSON, _nested(900), 400, "json"),
    ("a 400-digit latitude", "PUT", "/v1/admin/{uuid}/location", ADMIN_JSON,
     b'{"coordinate": {"latitude": 1' + b"0" * 400 + b', "longitude": 1}, "timezone": {"code": "UTC"}}',
     400, "json"),
    ("truncated activation", "POST", "/v1/device/activate", JSON_TYPE, b'{"state": ', 400, "text"),
    ("a list as a setting's name", "PUT", "/v1/admin/skill_settings/s", ADMIN_JSON,
     b'{"meta": {"sections": [{"fields": [{"name": [], "type": "text"}]}]}}', 400, "json"),
    ("a list as a setting's type", "PUT", "/v1/device/{uuid}/settingsMeta", DEVICE_JSON,
     b'{"skill_gid": "s|main", "sections": [{"fields": [{"name": "a", "type": [null]}]}]}', 400, "json"),
    ("a text wake word config", "PUT", "/v1/admin/{uuid}/prefs", ADMIN_JSON,
     b'{"ww_module": "x", "ww_config": "abc"}', 400, "json"),
    ("a list as a skill id", "PUT", "/v1/device/{uuid}/skillJson", DEVICE_JSON,
     b'{"skills": [{"name": "x", "skill_gid": ["a"]}]}', 400, "json"),
    # the configuration (not fuzzed by the admin: see NOT_FUZZED_BY_OWNER)
    ("config not an object", "POST", "/v1/admin/config", ADMIN_JSON, b'{"config": []}', 400, "json"),
    ("config clearing the key", "POST", "/v1/admin/config", ADMIN_JSON,
     b'{"config": {"server": {"admin_key": ""}}}', 400, "json"),
    ("config with a short key", "POST", "/v1/admin/config", ADMIN_JSON,
     b'{"config": {"server": {"admin_key": "short"}}}', 400, "json"),
    ("config with a text port", "POST", "/v1/admin/config", ADMIN_JSON,
     b'{"config": {"server": {"port": "x"}}}', 400, "json"),
    ("config with a surrogate key", "POST", "/v1/admin/config", ADMIN_JSON,
     b'{"config": {"\ud800": 1}}', 400, "json"),
    ("config with a bad location", "POST", "/v1/admin/config", ADMIN_JSON,
     b'{"config": {"location": 5}}', 400, "json"),
    # wrong content types: JSON routes take only bodies labelled JSON (issue 15: a web page
    # can send the others anywhere without asking)
    ("a form body", "PATCH", "/v1/device/{uuid}",
     {**DEVICE, "Content-Type": "application/x-www-form-urlencoded"}, b"coreVersion=1", 415, "json"),
    ("an XML body", "PUT", "/v1/admin/{uuid}/device", {**ADMIN, "Content-Type": "text/xml"},
     b"<name>x</name>", 415, "json"),
    ("a multipart body", "PUT", "/v1/admin/{uuid}/device",
     {**ADMIN, "Content-Type": "multipart/form-data; boundary=b"},
     b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\nx\r\n--b--\r\n', 415, "json"),
    ("JSON labelled text", "POST", "/v1/device/activate", {"Content-Type": "text/plain"},
     b'{"state": "x", "token": "y"}', 415, "text"),
    ("JSON as audio", "POST", "/v1/stt", DEVICE_JSON, b'{"audio": 1}', 400, "json"),
    ("JSON as a wake word upload", "POST", "/precise/upload", DEVICE_JSON, b"{}", 400, "json"),
    # missing parameters
    ("code without state", "GET", "/v1/device/code", {}, b"", 400, "json"),
    ("voice without arch", "GET", "/v1/device/{uuid}/voice", DEVICE, b"", 400, "json"),
    ("place without a name", "GET", "/v1/geolocation", DEVICE, b"", 400, "json"),
    ("Wolfram without a question", "GET", "/v1/wolframAlphaSpoken", DEVICE, b"", 400, "json"),
    ("activation without a body", "POST", "/v1/device/activate", JSON_TYPE, b"", 400, "text"),
    ("activation without a token", "POST", "/v1/device/activate", JSON_TYPE, b'{"state": "x"}', 400, "text"),
    ("device without uuid", "POST", "/v1/admin/devices", ADMIN_JSON, b"{}", 400, "json"),
    ("skill settings without a skill", "PUT", "/v1/device/{uuid}/skill", DEVICE_JSON, b"{}", 400, "json"),
    ("metric without a body", "POST", "/v1/device/{uuid}/metric/timing", DEVICE, b"", 400, "json"),
    # huge bodies and headers: over server.max_body_mb the app answers 413 JSON; far over
    # it (or announced far over it) waitress cuts the request off itself, in plain text
    ("an 11 MB body", "PATCH", "/v1/device/{uuid}", DEVICE_JSON, b" " * (11 << 20), 413, "json"),
    ("an 11 MB activation", "POST", "/v1/device/activate", JSON_TYPE, b" " * (11 << 20), 413, "text"),
    ("a 25 MB body", "PUT", "/v1/admin/{uuid}/device", ADMIN_JSON, b" " * (25 << 20), 413, "text"),
    ("100 GB announced", "PUT", "/v1/admin/{uuid}/device",
     {**ADMIN, **JSON_TYPE, "Content-Length": "100000000000"}, b"{}", 413, "text"),
    ("a 300 kB header", "GET", "/v1/device/{uuid}", {**DEVICE, "X-Big": "x" * 300_000}, b"", 431, "text"),
    # lone surrogates and invalid UTF-8: in paths, query strings, JSON strings, headers
    # (raw in the request line, waitress refuses the request as malformed HTTP, in plain text)
    ("raw surrogate in a device path", "GET", b"/v1/device/" + SURROGATE + b"/setting", DEVICE, b"",
     400, "text"),
    ("raw surrogate in an admin path", "GET", b"/v1/admin/devices/" + SURROGATE, ADMIN, b"", 400, "text"),
    ("raw surrogate in a query", "GET", b"/v1/device/code?state=" + SURROGATE, {}, b"", 400, "text"),
    ("encoded surrogate in a device path", "GET", "/v1/device/%ED%A0%80/setting", DEVICE, b"", 401, "text"),
    ("encoded surrogate in an admin path", "GET", "/v1/admin/devices/%ED%A0%80", ADMIN, b"", 404, "json"),
    ("encoded surrogate in a query", "GET", "/v1/device/code?state=%ED%A0%80", {}, b"", 400, "json"),
    ("encoded surrogate in an echoed query", "GET", "/v1/device/{uuid}/voice?arch=%ED%A0%80x", DEVICE,
     b"", 200, "json"),
    ("surrogate escape in JSON", "PATCH", "/v1/device/{uuid}", DEVICE_JSON,
     b'{"coreVersion": "\\ud800"}', 400, "json"),
    ("surrogate escape in a name", "PUT", "/v1/admin/{uuid}/device", ADMIN_JSON,
     b'{"name": "\\udfff kitchen"}', 400, "json"),
    ("surrogate escape in a key", "PUT", "/v1/admin/skill_settings/s", ADMIN_JSON,
     b'{"settings_json": {"\\ud800": 1}}', 400, "json"),
    ("surrogate escape in JSON in JSON", "POST", "/v1/admin/skill_settings", ADMIN_JSON,
     b'{"skill_id": "s", "settings_json": "{\\"a\\": \\"\\\\ud800\\"}"}', 400, "json"),
    ("surrogate escape in a metric", "POST", "/v1/device/{uuid}/metric/timing", DEVICE_JSON,
     b'{"a": "\\ud800"}', 400, "json"),
    ("surrogate escape in an activation", "POST", "/v1/device/activate", JSON_TYPE,
     b'{"state": "\\ud800", "token": "\\ud800"}', 400, "text"),
    ("surrogate as a device token", "GET", "/v1/device/{uuid}", {"Authorization": b"Bearer " + SURROGATE},
     b"", 401, "text"),
    ("surrogate as the admin key", "GET", "/v1/admin/devices/list",
     {"Authorization": b"Bearer " + SURROGATE}, b"", 401, "json"),
    # path traversal in ids (sent raw: nothing on the way removes the dots)
    ("encoded slashes in a uuid", "GET", "/v1/admin/devices/..%2F..%2F..%2Fetc%2Fpasswd", ADMIN, b"",
     404, "json"),
    ("dots in a skill id", "GET", "/v1/admin/skill_settings/../../../../etc/passwd", ADMIN, b"",
     404, "json"),
    ("dots in a static file", "GET", "/admin/static/../../../../etc/passwd", {}, b"", 404, "html"),
    ("dots in a recording id", "GET", "/v1/admin/voice_recs/..%2F..%2Fdevices%2F{uuid}/audio", ADMIN,
     b"", 404, "json"),
    ("dots in a definition id", "GET", "/v1/admin/ww_defs/../../skill_settings", ADMIN, b"", 404, "json"),
    ("dots in a weather endpoint", "GET", "/v1/owm/../../../etc/passwd", DEVICE, b"", 404, "json"),
    ("dots in an OAuth app id", "GET", "/v1/admin/oauth_apps/..", ADMIN, b"", 400, "json"),
    ("dots in a new device's uuid", "POST", "/v1/admin/devices", ADMIN_JSON,
     b'{"uuid": "../../../tmp/evil"}', 400, "json"),
    ("a newline ending a uuid", "POST", "/v1/admin/devices", ADMIN_JSON, b'{"uuid": "abc\\n"}', 400, "json"),
    ("a newline ending a state", "GET", "/v1/device/code?state=abcdefgh%0A", {}, b"", 400, "json"),
    # forged and absent credentials
    ("no token", "GET", "/v1/device/{uuid}/setting", {}, b"", 401, "text"),
    ("a forged token", "GET", "/v1/device/{uuid}/setting", {"Authorization": "Bearer " + "A" * 43},
     b"", 401, "text"),
    ("the refresh token", "GET", "/v1/device/{uuid}/setting", {"Authorization": "Bearer {refresh}"},
     b"", 401, "text"),
    ("a token in the query", "GET", "/v1/device/{uuid}/setting?access_token={access}", {}, b"",
     401, "text"),
    ("the admin key on a device", "GET", "/v1/device/{uuid}/setting", ADMIN, b"", 401, "text"),
    ("another device's path", "GET", "/v1/device/{victim}/setting", DEVICE, b"", 401, "text"),
    ("a device token on the admin API", "GET", "/v1/admin/devices/list", DEVICE, b"", 401, "json"),
    ("the admin key as Basic auth", "GET", "/v1/admin/devices/list", {"Authorization": "Basic {basic}"},
     b"", 401, "json"),
    ("the admin key plus a character", "GET", "/v1/admin/devices/list",
     {"Authorization": "Bearer {admin}x"}, b"", 401, "json"),
    ("no admin key", "GET", "/v1/admin/config", {}, b"", 401, "json"),
    ("approving a code without the key", "POST", "/v1/admin/pairings/ABC347/approve", {}, b"", 401, "json"),
    ("activation with a made-up token", "POST", "/v1/device/activate", JSON_TYPE,
     b'{"state": "' + str(uuidlib.uuid4()).encode() + b'", "token": "made-up"}', 404, "text"),
]


def _fill(value, values: dict):
    if isinstance(value, bytes):
        return value
    return value.format(**values).encode("latin-1")


def raw_request(port: int, method: str, target: bytes, headers: Dict[str, bytes],
                body: bytes = b"", timeout: float = 60) -> Tuple[int, Dict[str, str], bytes]:
    """One request written byte for byte; (status, headers, body) of the answer.

    The answer is read while the request is still being sent: a server refusing a
    huge request answers and closes early, and the reset that follows would discard
    an answer not read yet."""
    head = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1",
            b"Connection: close"]
    head += [name.encode() + b": " + value for name, value in headers.items()]
    if "Content-Length" not in headers:
        head.append(b"Content-Length: " + str(len(body)).encode())
    answer = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        def read():
            try:
                while chunk := sock.recv(1 << 16):
                    answer.extend(chunk)
            except OSError:
                pass
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            sock.sendall(b"\r\n".join(head) + b"\r\n\r\n" + body)
        except OSError:
            pass  # the server answered and closed before the whole request was sent
        reader.join(timeout)
    status_line, _, rest = bytes(answer).partition(b"\r\n")
    header_block, _, content = rest.partition(b"\r\n\r\n")
    answer_headers = dict(line.decode("latin-1").split(": ", 1)
                          for line in header_block.split(b"\r\n") if line)
    return int(status_line.split()[1]), answer_headers, content


def test_hostile_requests_get_their_exact_refusal_and_change_nothing(target, tmp_path):
    values = {"uuid": target.device["uuid"], "victim": target.victim, "admin": ADMIN_KEY,
              "access": target.device["accessToken"], "refresh": target.device["refreshToken"],
              "basic": base64.b64encode(f"admin:{ADMIN_KEY}".encode()).decode()}
    before, around = snapshot(target.data_path), snapshot(tmp_path.parent)
    wrong = []
    for what, method, path, headers, body, status, kind in HOSTILE:
        got, answer_headers, answer = raw_request(
            target.server.port, method, _fill(path, values),
            {name: _fill(value, values) for name, value in headers.items()}, body)
        content_type = answer_headers.get("Content-Type", "")
        if kind == "json":
            try:
                well_formed = got == 200 or isinstance(json.loads(answer)["error"], str)
            except (ValueError, KeyError, TypeError):
                well_formed = False
            well_formed = well_formed and content_type.startswith("application/json")
        elif kind == "html":
            well_formed = content_type.startswith("text/html") and b"root:" not in answer
        else:
            well_formed = content_type.startswith("text/plain")
        if got != status or not well_formed:
            wrong.append(f"{what}: expected {status} {kind}, got {got} {content_type} {answer[:150]!r}")
    assert not wrong, "\n".join(wrong)
    assert snapshot(target.data_path) == before  # nothing stored, nothing damaged
    assert not (tmp_path / "backend.conf").exists()  # no config change was saved
    after = {k: v for k, v in snapshot(tmp_path.parent).items() if not k.startswith(tmp_path.name)}
    assert after == {k: v for k, v in around.items() if not k.startswith(tmp_path.name)}
    assert_store_intact(target)


def test_valid_unicode_is_stored_faithfully(target):
    name = "Küche 😀 \u202e\u0000 نافذة"
    answer = requests.put(f"{target.url}/v1/admin/{target.victim}/device", json={"name": name},
                          headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)
    assert answer.status_code == 200 and answer.json()["name"] == name
    assert Store(target.data_path).devices.get(target.victim)["name"] == name


def test_replayed_credentials_are_refused(target):
    """Rotated tokens, a used refresh token, an activation replayed after its grace
    period: each refused, with the data left as it was."""
    url, old = target.url, target.device
    new = requests.get(f"{url}/v1/auth/token", timeout=30,
                       headers={"Authorization": f"Bearer {old['refreshToken']}"}).json()
    for token in (old["accessToken"], old["refreshToken"]):
        answer = requests.get(f"{url}/v1/device/{old['uuid']}", timeout=30,
                              headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401 and answer.headers["Content-Type"].startswith("text/plain")
        answer = requests.get(f"{url}/v1/auth/token", timeout=30,
                              headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401
    # an activation replayed after the grace period
    state = str(uuidlib.uuid4())
    code = requests.get(f"{url}/v1/device/code", params={"state": state}, timeout=30).json()
    activation = {"state": state, "token": code["token"]}
    assert requests.post(f"{url}/v1/device/activate", json=activation, timeout=30).status_code == 200
    target.store.pairings.update(code["code"], lambda p: {
        **p, "activated_at": p["activated_at"] - pairing.REACTIVATION_GRACE - 1})
    before = snapshot(target.data_path)
    answer = requests.post(f"{url}/v1/device/activate", json=activation, timeout=30)
    assert answer.status_code == 404 and answer.headers["Content-Type"].startswith("text/plain")
    assert requests.get(f"{url}/v1/device/{new['uuid']}", timeout=30,
                        headers={"Authorization": f"Bearer {new['accessToken']}"}).status_code == 200
    # the expired session is forgotten, nothing else changed
    after = snapshot(target.data_path)
    assert {k: v for k, v in after.items() if "pairings" not in k} == \
        {k: v for k, v in before.items() if "pairings" not in k}


def test_activation_needs_the_issued_pair_and_approval_polls_are_not_failures(tmp_path):
    """Confirm mode: activation without an issued code, with half of one, or with a denied
    one is refused; a device polling while it waits for approval (403) is never rate limited."""
    with serve(make_config(tmp_path / "data", pairing="confirm")) as server:
        url = server.url
        state = str(uuidlib.uuid4())
        code = requests.get(f"{url}/v1/device/code", params={"state": state}, timeout=30).json()
        for body in ({"state": str(uuidlib.uuid4()), "token": code["token"]},
                     {"state": state, "token": "0" * 64}, {"state": state, "token": 7}):
            answer = requests.post(f"{url}/v1/device/activate", json=body, timeout=30)
            assert answer.status_code in (400, 404)
            assert answer.headers["Content-Type"].startswith("text/plain")
        for _ in range(ratelimit.LIMITS["activation"][0] + 10):
            answer = requests.post(f"{url}/v1/device/activate", timeout=30,
                                   json={"state": state, "token": code["token"]})
            assert answer.status_code == 403 and "approve" in answer.text
        requests.post(f"{url}/v1/admin/pairings/{code['code']}/approve", timeout=30,
                      headers={"Authorization": f"Bearer {ADMIN_KEY}"}).raise_for_status()
        answer = requests.post(f"{url}/v1/device/activate", timeout=30,
                               json={"state": state, "token": code["token"]})
        assert answer.status_code == 200 and answer.json()["uuid"] == state
        denied = requests.get(f"{url}/v1/device/code", params={"state": str(uuidlib.uuid4())},
                              timeout=30).json()
        requests.post(f"{url}/v1/admin/pairings/{denied['code']}/deny", timeout=30,
                      headers={"Authorization": f"Bearer {ADMIN_KEY}"}).raise_for_status()
        answer = requests.post(f"{url}/v1/device/activate", timeout=30,
                               json={"state": denied["state"], "token": denied["token"]})
        # told it was denied (403, like the wait: it holds a valid token, so no failure counted)
        assert answer.status_code == 403 and answer.headers["Content-Type"].startswith("text/plain")
        assert "denied" in answer.text


# brute force and floods ----------------------------------------------------------------------

def test_wrong_activations_are_rate_limited_but_a_valid_one_never_is(target):
    limit, window = ratelimit.LIMITS["activation"]
    url = target.url
    state = str(uuidlib.uuid4())
    code = requests.get(f"{url}/v1/device/code", params={"state": state}, timeout=30).json()
    statuses = []
    for n in range(limit + 5):
        answer = requests.post(f"{url}/v1/device/activate", timeout=30,
                               json={"state": state, "token": f"guess-{n}"})
        statuses.append(answer.status_code)
        assert answer.headers["Content-Type"].startswith("text/plain")  # never JSON
    assert statuses == [404] * limit + [429] * 5
    assert 0 < int(answer.headers["Retry-After"]) <= window
    # the issued token still pairs, from this very address
    answer = requests.post(f"{url}/v1/device/activate", timeout=30,
                           json={"state": state, "token": code["token"]})
    assert answer.status_code == 200 and answer.json()["uuid"] == state
    # another address has its own budget
    status, _, _ = request_from(OTHER_ADDRESS, f"{url}/v1/device/activate", "POST",
                                JSON_TYPE, b'{"state": "abcdefgh", "token": "guess"}')
    assert status == 404


def test_wrong_admin_keys_are_rate_limited_per_address(target):
    limit, window = ratelimit.LIMITS["admin_key"]
    url = f"{target.url}/v1/admin/devices/list"
    statuses = [requests.get(url, headers={"Authorization": f"Bearer guess-{n}"},
                             timeout=30).status_code for n in range(limit)]
    assert statuses == [401] * limit
    answer = requests.get(url, headers={"Authorization": "Bearer guess"}, timeout=30)
    assert answer.status_code == 429 and "error" in answer.json()
    assert 0 < int(answer.headers["Retry-After"]) <= window
    # the right key is never refused (issue 15: an address is shared by every process on a
    # machine, whose failures must not lock the owner out); another address has its own budget
    right = {"Authorization": f"Bearer {ADMIN_KEY}"}
    assert requests.get(url, headers=right, timeout=30).status_code == 200
    status, _, body = request_from(OTHER_ADDRESS, url, headers={"Authorization": "Bearer guess"})
    assert status == 401 and json.loads(body)["error"]


def test_a_thousand_pairings_from_one_address(target):
    """Legitimate pairings are never refused, and never use up the failure budget."""
    count = 1000
    session = requests.Session()
    url = target.url
    limit = ratelimit.LIMITS["activation"][0]
    started = time.monotonic()
    for n in range(count):
        state = str(uuidlib.uuid4())
        code = session.get(f"{url}/v1/device/code", params={"state": state}, timeout=30)
        assert code.status_code == 200, code.text
        answer = session.post(f"{url}/v1/device/activate", timeout=30,
                              json={"state": state, "token": code.json()["token"]})
        assert answer.status_code == 200 and answer.json()["uuid"] == state, (n, answer.text)
        if n % (count // (limit - 1)) == 0 and n:  # failures mixed in, under the limit
            wrong = session.post(f"{url}/v1/device/activate", json={"state": state, "token": "x"},
                                 timeout=30)
            assert wrong.status_code == 404
    elapsed = time.monotonic() - started
    # the budget is what the failures left: the thousand successes took nothing from it
    wrong = session.post(f"{url}/v1/device/activate", json={"state": "x" * 8, "token": "x"}, timeout=30)
    assert wrong.status_code == 404
    print(f"\n{count} pairings (code + activation) from one address in {elapsed:.1f} s "
          f"({count / elapsed:.0f}/s), none refused")
    assert len(target.store.devices) == count + 2
    assert_store_intact(target)


def test_the_failure_memory_is_bounded():
    limiter = ratelimit.FailureLimiter(limit=3, window=60, max_clients=100)
    for n in range(10_000):
        limiter.failed(f"10.0.{n // 256}.{n % 256}")
    assert len(limiter) == 100
    for _ in range(1000):
        limiter.failed("attacker")
    assert limiter.retry_after("attacker") > 0 and len(limiter._failures["attacker"]) == 3
    assert limiter.retry_after("10.0.0.0") == 0  # forgotten (the least recently failing)


def test_admin_routes_without_a_key(target):
    """Every admin API route, every method: 401 JSON without the key (or with a wrong
    one), 403 JSON while the admin API is disabled; every admin page sends to the login."""
    client = target.app.test_client()
    routes = [(path, method) for path, method, endpoint, _ in openapi.routes(target.app)]
    filled = [(re.sub(r"\{[^}]+\}", "x", path), method.upper()) for path, method in routes]
    api = [(p, m) for p, m in filled if p.startswith("/v1/admin")]
    pages = [(p, m) for p, m in filled
             if p.startswith("/admin") and "static" not in p and "login" not in p]
    assert len(api) > 60 and len(pages) > 20
    for n, (path, method) in enumerate(api):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": ADMIN_KEY}):
            answer = client.open(path, method=method, headers=headers, json={},
                                 environ_base={"REMOTE_ADDR": f"192.0.2.{n % 250}"})
            assert answer.status_code == 401 and answer.json["error"], (method, path, headers)
    for path, method in pages:
        answer = client.open(path, method=method)
        if method == "GET" and path != "/admin/pending.json":
            assert answer.status_code == 302 and "/admin/login" in answer.headers["Location"], path
        else:  # a POST without the session's CSRF token, the dashboard's background poll
            assert answer.status_code in (400, 401), (method, path)
    target.app.extensions["personal_backend"]["config"]["server"]["admin_key"] = ""
    for path, method in api:
        answer = client.open(path, method=method, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert answer.status_code == 403 and answer.json["error"], (method, path)


# slow clients ---------------------------------------------------------------------------------

class SlowClient(threading.Thread):
    """A slowloris: sends its request a few bytes at a time, never finishing it."""

    def __init__(self, port: int, request: bytes, stop: threading.Event):
        super().__init__(daemon=True)
        self.port, self.request, self.stop = port, request, stop
        self.sent = 0

    def run(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=60) as sock:
            while not self.stop.is_set() and self.sent < len(self.request):
                sock.sendall(self.request[self.sent:self.sent + 1])
                self.sent += 1
                self.stop.wait(0.2)
            self.stop.wait()


def test_slow_clients_do_not_block_others(target):
    """Headers trickling in byte by byte, bodies slower than announced: waitress buffers
    whole requests in its event loop before a worker thread sees them, so twice as many
    slow clients as worker threads leave every thread free for everyone else."""
    port, uuid = target.server.port, target.device["uuid"]
    slow_headers = (f"GET /v1/device/{uuid} HTTP/1.1\r\nHost: x\r\n"
                    f"Authorization: Bearer {'x' * 200}\r\n").encode()
    slow_body = (f"PATCH /v1/device/{uuid} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
                 f"Authorization: Bearer {target.device['accessToken']}\r\n\r\n"
                 '{"coreVersion": "').encode() + b"1" * 1000
    stop = threading.Event()
    slow = [SlowClient(port, slow_headers if n % 2 else slow_body, stop)
            for n in range(2 * target.server.threads)]
    for client in slow:
        client.start()
    try:
        time.sleep(1.5)  # every slow client is connected and has sent part of its request
        durations = []
        session = requests.Session()
        for _ in range(20):
            started = time.monotonic()
            answer = session.get(f"{target.url}/v1/device/{uuid}/setting", timeout=30,
                                 headers=target.device_headers())
            durations.append(time.monotonic() - started)
            assert answer.status_code == 200
        assert all(client.is_alive() for client in slow)  # still hanging on
        print(f"\n{len(slow)} slow clients connected ({target.server.threads} worker threads); "
              f"20 normal requests took max {max(durations) * 1000:.0f} ms, "
              f"median {sorted(durations)[10] * 1000:.0f} ms")
        # generous: a blocked server would take until the slow clients give up (30 s+)
        assert max(durations) < 5
    finally:
        stop.set()


def test_one_address_cannot_take_every_connection(target):
    """Connections that never finish their request, from one address: past
    CONNECTIONS_PER_ADDRESS the server closes its oldest idle ones, and another address is
    served."""
    from ovos_skill_personal_backend.backend.server import CONNECTIONS_PER_ADDRESS
    hanging = []
    try:
        for _ in range(CONNECTIONS_PER_ADDRESS + 20):
            sock = socket.create_connection(("127.0.0.1", target.server.port), timeout=10)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the end of it
            hanging.append(sock)
        time.sleep(1)
        closed = 0
        for sock in hanging:
            sock.setblocking(False)
            try:
                closed += sock.recv(1) == b""
            except BlockingIOError:
                pass  # still open, waiting for the rest of its request
            except ConnectionResetError:
                closed += 1
        started = time.monotonic()
        status, _, _ = request_from(OTHER_ADDRESS, f"{target.url}/v1/device/{target.device['uuid']}",
                                    headers=target.device_headers())
        elapsed = time.monotonic() - started
        print(f"\n{len(hanging)} hanging connections from one address: {closed} closed by the "
              f"server; another address answered in {elapsed * 1000:.0f} ms")
        assert closed == len(hanging) - CONNECTIONS_PER_ADDRESS
        assert status == 200 and elapsed < 5
    finally:
        for sock in hanging:
            sock.close()
