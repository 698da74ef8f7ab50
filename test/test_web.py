"""The admin web page through Flask's test client: login, sessions, CSRF, headers,
and every page's forms against the real domain modules and store."""
import json
import re
import time

import pytest

from conftest import ADMIN_KEY, make_config
from ovos_skill_personal_backend.backend import create_app, datasets, devices, pairing, skill_settings
from ovos_skill_personal_backend.backend.store import Store
from ovos_skill_personal_backend.backend.web import charts, security

from browser import Browser
from audio import buzz_wav

PAGES = ["/admin/", "/admin/devices", "/admin/skills", "/admin/recordings",
         "/admin/recordings?kind=wakewords", "/admin/metrics", "/admin/config"]


@pytest.fixture
def config_path(tmp_path):
    return tmp_path / "ovos_backend.conf"


@pytest.fixture
def app(config, store, config_path):
    config["microservices"]["owm_key"] = "owm-secret-1234"
    return create_app(config, store, config_path=str(config_path))


@pytest.fixture
def browser(client):
    return Browser(client)


@pytest.fixture
def admin(browser):
    assert browser.login().status_code == 302
    return browser


@pytest.fixture
def device(store, config):
    uuid = pairing.pair_directly(store, config)["uuid"]
    return devices.update(store, uuid, {"name": "Kitchen"})


def _invalid_inputs(html: str) -> list:
    """The ids of the inputs a page marks as refused: aria-invalid and the CSS class,
    described by the error message."""
    marked = []
    for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*>", html):
        if 'aria-invalid="true"' in tag:
            assert 'class="invalid"' in tag and "form-error" in tag, tag
            marked.append(re.search(r'id="([^"]+)"', tag).group(1))
    return marked


def _flash(response) -> str:
    return " ".join(re.findall(r'class="flash[^"]*"[^>]*>([^<]*)<', response.get_data(as_text=True)))


# availability and login ---------------------------------------------------------------------

def test_page_is_disabled_without_an_admin_key(tmp_path):
    config = make_config(tmp_path / "data", admin_key="")
    client = create_app(config, Store(config["data_path"])).test_client()
    for path in ("/admin/", "/admin/login", "/admin/devices"):
        response = client.get(path)
        assert response.status_code == 403 and "admin page is disabled" in response.get_data(as_text=True)
    assert client.post("/admin/login", data={"admin_key": ""}).status_code == 403
    assert client.get("/admin/static/style.css").status_code == 200  # the disabled page is styled


@pytest.mark.parametrize("path", PAGES + ["/admin/devices/some-uuid", "/admin/skills/shared/x"])
def test_pages_need_a_login(browser, path):
    response = browser.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login?next=")


def test_pending_poll_needs_a_login_too(browser):
    response = browser.get("/admin/pending.json")
    assert response.status_code == 401 and response.json == {"error": "log in again"}


def test_login_then_every_page_renders(admin):
    for path in PAGES:
        response = admin.get(path)
        assert response.status_code == 200, path
        assert "<h1>" in response.get_data(as_text=True)
    assert admin.get("/admin/login").headers["Location"] == "/admin/"  # already logged in


def test_wrong_key_is_refused_and_throttled(browser, client):
    for _ in range(5):
        response = browser.login("not-the-admin-key-at-all")
        assert response.status_code == 401 and "not the admin key" in response.get_data(as_text=True)
    response = browser.login("not-the-admin-key-either")  # a wrong key waits now
    assert response.status_code == 429 and int(response.headers["Retry-After"]) > 0
    # the right key never does (issue 15: another process on the owner's address must
    # not lock the owner out); another address is not throttled by this one's failures
    assert browser.login().status_code == 302
    other = Browser(client.application.test_client())
    wrong = other.login("wrong-key-from-elsewhere", environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert wrong.status_code == 401


def test_throttle_limits_overall_and_forgives_after_the_window():
    throttle = security.LoginThrottle(per_client=3, overall=4, window=0.2)
    for client in ("a", "b", "c", "d"):
        throttle.failed(client)
    assert throttle.retry_after("e") > 0  # too many failures in total
    time.sleep(0.25)
    assert throttle.retry_after("e") == 0


def test_login_only_redirects_inside_the_admin_page(browser):
    for target in ("https://evil.example/", "//evil.example/admin", "/v1/admin/config"):
        response = browser.client.post("/admin/login", data={
            "admin_key": ADMIN_KEY, "csrf_token": browser.csrf(), "next": target})
        assert response.headers["Location"] == "/admin/"
    response = browser.client.post("/admin/login", data={
        "admin_key": ADMIN_KEY, "csrf_token": browser.csrf(), "next": "/admin/metrics?type=x"})
    assert response.headers["Location"] == "/admin/metrics?type=x"


def test_session_cookie_flags(browser, client):
    cookie = browser.login().headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin" in cookie
    assert "Secure" not in cookie  # plain http on the LAN would otherwise never send it back
    secure = Browser(client.application.test_client())
    with secure.client.session_transaction("/admin/", base_url="https://localhost") as session:
        session["csrf"] = "t"
    response = secure.client.post("/admin/login", base_url="https://localhost",
                                  data={"admin_key": ADMIN_KEY, "csrf_token": "t"})
    assert "Secure" in response.headers["Set-Cookie"]


def test_a_login_starts_a_new_session(browser):
    with browser.client.session_transaction("/admin/") as session:
        session.update(csrf="planted", planted="by someone else")
    browser.login()
    with browser.client.session_transaction("/admin/") as session:
        assert "planted" not in session and session["csrf"] != "planted"


@pytest.mark.parametrize("field, age", [("seen_at", security.IDLE_LIMIT + 5),
                                        ("login_at", security.SESSION_LIMIT + 5)])
def test_sessions_expire(admin, field, age):
    with admin.client.session_transaction("/admin/") as session:
        session[field] = time.time() - age
    response = admin.get("/admin/devices")
    assert response.status_code == 302
    assert "session ended" in _flash(admin.get(response.headers["Location"]))
    assert admin.get("/admin/devices").status_code == 302  # the session is gone, not revived


def _restarted(browser, config, store, config_path) -> Browser:
    """The same browser (its cookies) against the backend restarted: a new app, whose
    session key is new, on the same data."""
    cookie = browser.client.get_cookie("pb_admin", path="/admin")
    assert cookie is not None
    after = Browser(create_app(config, store, config_path=str(config_path)).test_client())
    after.client.set_cookie("pb_admin", cookie.value, path="/admin")
    return after


def test_after_a_restart_the_login_page_says_the_session_ended(admin, config, store, config_path):
    after = _restarted(admin, config, store, config_path)
    response = after.get("/admin/devices")
    assert response.status_code == 302 and response.headers["Location"] == "/admin/login?next=/admin/devices"
    page = after.get(response.headers["Location"])
    assert "your session ended" in _flash(page) and "restarted" in _flash(page)
    assert after.login().status_code == 302  # then logging in works as ever
    assert after.get("/admin/devices").status_code == 200
    assert "session ended" not in _flash(after.get("/admin/devices"))  # said once


def test_after_a_restart_every_way_in_explains(admin, config, store, config_path):
    # the login page itself, opened with the old cookie
    page = _restarted(admin, config, store, config_path).get("/admin/login")
    assert page.status_code == 200 and "your session ended" in _flash(page)
    # a form sent from a page loaded before the restart: not "form expired", the login
    after = _restarted(admin, config, store, config_path)
    response = after.client.post("/admin/pairing-mode", data={"mode": "confirm", "csrf_token": "from-before"})
    assert response.status_code == 302 and response.headers["Location"] == "/admin/login"
    assert "your session ended" in _flash(after.get("/admin/login"))
    assert config["server"]["pairing"] == "auto"
    # the dashboard's background poll
    after = _restarted(admin, config, store, config_path)
    assert after.get("/admin/pending.json").status_code == 401
    # somebody who never logged in sees a plain login page
    fresh = Browser(create_app(config, store, config_path=str(config_path)).test_client())
    assert _flash(fresh.get("/admin/login")) == ""


def test_the_background_poll_does_not_keep_a_session_alive(admin):
    idle_since = time.time() - security.IDLE_LIMIT + 60
    with admin.client.session_transaction("/admin/") as session:
        session["seen_at"] = idle_since
    assert admin.get("/admin/pending.json").status_code == 200
    with admin.client.session_transaction("/admin/") as session:
        assert session["seen_at"] == idle_since


def test_logout(admin):
    response = admin.post("/admin/logout")
    assert response.status_code == 302
    assert "logged out" in _flash(admin.get(response.headers["Location"]))
    assert admin.get("/admin/").status_code == 302


def test_changing_the_admin_key_ends_sessions(admin, config):
    new_key = "another-admin-key-123456"
    response = admin.post("/admin/config", data={"server.admin_key": new_key})
    assert response.status_code == 302 and config["server"]["admin_key"] == new_key
    response = admin.get("/admin/")
    assert response.status_code == 302
    assert "admin key changed" in _flash(admin.get(response.headers["Location"]))
    assert admin.login().status_code == 401
    assert admin.login(new_key).status_code == 302


# CSRF and headers -----------------------------------------------------------------------------

@pytest.mark.parametrize("token", [None, "", "a-token-from-another-session"])
def test_posts_without_the_sessions_token_are_refused(admin, config, token):
    data = {"mode": "confirm"} if token is None else {"mode": "confirm", "csrf_token": token}
    response = admin.client.post("/admin/pairing-mode", data=data)
    assert response.status_code == 400 and "Form expired" in response.get_data(as_text=True)
    assert config["server"]["pairing"] == "auto"
    assert admin.client.post("/admin/login", data={"admin_key": ADMIN_KEY}).status_code == 400


@pytest.mark.parametrize("path", PAGES + ["/admin/login", "/admin/static/app.js"])
def test_security_headers(admin, path):
    headers = admin.get(path).headers
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"  # the page's own forms carry their Origin
    if "static" not in path:
        assert headers["Cache-Control"] == "no-store"


def test_pages_hold_no_inline_script_or_style(admin, device, store):
    skill_settings.upload_meta(store, device["uuid"], {"skill_gid": f"@{device['uuid']}|skill-a.b", **META})
    for path in PAGES + [f"/admin/devices/{device['uuid']}", f"/admin/skills/device/{device['uuid']}/skill-a.b",
                         "/admin/login"]:
        html = admin.get(path).get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), path
        assert not re.search(r"\sstyle=|<style|\son[a-z]+=", html), path


# dashboard and pairing --------------------------------------------------------------------

@pytest.fixture
def codes(store, config):
    config["server"]["pairing"] = "confirm"
    return [pairing.request_code(store, config, f"state-{n}-aaaaaaaa")["code"] for n in range(3)]


def test_dashboard_shows_url_mode_and_pending_codes(admin, codes, config):
    html = admin.get("/admin/").get_data(as_text=True)
    assert "http://127.0.0.1:0" in html  # the URL other devices should use
    assert "confirm" in html
    for code in codes:
        assert f'id="pending-{code}"' in html
    assert admin.get("/admin/pending.json").json == {"codes": codes}


def test_approve_and_deny_from_the_dashboard(admin, codes, store):
    assert admin.post(f"/admin/pairings/{codes[0]}/approve").status_code == 302
    assert admin.post(f"/admin/pairings/{codes[1]}/deny").status_code == 302
    assert store.pairings.get(codes[0])["status"] == "approved"
    assert store.pairings.get(codes[1])["status"] == "denied"  # kept: the device is told, the owner may undo
    # typed as heard: lower case, spaces
    spoken = " ".join(codes[2].lower())
    response = admin.post("/admin/pairings/approve", data={"code": spoken})
    assert "approved" in _flash(admin.get(response.headers["Location"]))
    assert store.pairings.get(codes[2])["status"] == "approved"
    response = admin.post("/admin/pairings/approve", data={"code": "ZZZZZZ"})
    assert "No device is waiting" in _flash(admin.get(response.headers["Location"]))
    response = admin.post(f"/admin/pairings/{codes[0]}/approve")  # no longer pending
    assert response.status_code == 404 and "no pending pairing" in response.get_data(as_text=True)
    assert admin.post(f"/admin/pairings/{codes[0]}/explode").status_code == 404


def test_pairing_mode_switch_is_saved(admin, config, config_path):
    admin.post("/admin/pairing-mode", data={"mode": "confirm"})
    assert config["server"]["pairing"] == "confirm"
    assert json.loads(config_path.read_text()) == {"server": {"pairing": "confirm"}}
    assert admin.post("/admin/pairing-mode", data={"mode": "anyone"}).status_code == 400


# devices --------------------------------------------------------------------------------------

DEVICE_FORM = {"name": "Living room", "device_location": "shelf", "email": "me@example.org",
               "lang": "pt-PT", "system_unit": "imperial", "date_format": "MDY", "time_format": "half",
               "opt_in": "on"}


def test_device_form_saves_every_field(admin, device, store):
    page = admin.get("/admin/devices").get_data(as_text=True)
    assert "Kitchen" in page
    response = admin.post(f"/admin/devices/{device['uuid']}", data=DEVICE_FORM)
    assert response.status_code == 302
    saved = devices.get(store, device["uuid"])
    assert {k: saved[k] for k in ("name", "device_location", "email", "lang", "system_unit",
                                  "date_format", "time_format", "opt_in", "isolated_skills")} == {
        "name": "Living room", "device_location": "shelf", "email": "me@example.org", "lang": "pt-pt",
        "system_unit": "imperial", "date_format": "MDY", "time_format": "half", "opt_in": True,
        "isolated_skills": False}
    # an unticked box is sent as nothing: it turns the option off
    admin.post(f"/admin/devices/{device['uuid']}", data={**DEVICE_FORM, "opt_in": None})
    assert devices.get(store, device["uuid"])["opt_in"] is False


@pytest.mark.parametrize("field, value, message, input_id", [
    ("email", "not-an-address", "E-mail for messages from skills: must be an e-mail address", "d-email"),
    ("name", "", "Name: must not be empty", "d-name"),
    ("lang", "English", "Language: must be a language tag", "d-lang"),
    ("time_format", "24h", "Time format: must be one of", "d-time"),
])
def test_device_form_refuses_bad_values_and_keeps_what_was_typed(admin, device, store, field, value, message,
                                                                 input_id):
    response = admin.post(f"/admin/devices/{device['uuid']}", data={**DEVICE_FORM, field: value})
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and message in html and 'role="alert"' in html
    assert 'value="shelf"' in html  # the rest of what was typed is still in the form
    assert _invalid_inputs(html) == [input_id]  # the wrong field, and only it, is marked
    if field != "time_format":  # a select shows the typed choice only if it is one of its options
        assert f'id="{input_id}" name="{field}"' in html and f'value="{value}"' in html
    assert devices.get(store, device["uuid"])["name"] == "Kitchen"


def test_device_list_has_no_dangling_separator(admin, device, store):
    def entry() -> str:
        html = admin.get("/admin/devices").get_data(as_text=True)
        return re.sub(r"\s+", " ", re.search(r'<li class="row">(.*?)</li>', html, re.S).group(1))

    devices.update(store, device["uuid"], {"device_location": ""})
    assert "Kitchen</strong></a><br>" in entry() and "·" not in entry().split("<br>")[0]  # no placement: no "·"
    devices.update(store, device["uuid"], {"device_location": "shelf"})
    assert "Kitchen</strong></a> <span class=\"muted\">· shelf</span>" in entry()


def test_device_wake_word_and_voice_from_the_catalogues(admin, device, store, config):
    from ovos_skill_personal_backend.backend import definitions
    ww = definitions.create(store, config, definitions.WAKE_WORD,
                            {"name": "hey mycroft", "plugin": "ovos-ww-plugin-precise-lite"})
    html = admin.get(f"/admin/devices/{device['uuid']}").get_data(as_text=True)
    assert f'value="{ww["ww_id"]}"' in html and "d-voice_id" not in html  # no voices defined
    admin.post(f"/admin/devices/{device['uuid']}", data={**DEVICE_FORM, "ww_id": ww["ww_id"]})
    saved = devices.get(store, device["uuid"])
    assert (saved["ww_id"], saved["wake_word"]) == (ww["ww_id"], "hey mycroft")
    assert saved["ww_config"] == {"module": "ovos-ww-plugin-precise-lite"}


def test_device_location_by_place_search(admin, device, store):
    page = admin.get(f"/admin/devices/{device['uuid']}/location?q=Lisbon").get_data(as_text=True)
    assert "Lisbon, Lisbon, Portugal" in page and "Europe/Lisbon" in page
    response = admin.post(f"/admin/devices/{device['uuid']}/location", data={"q": "Lisbon", "index": "0"})
    assert response.status_code == 302
    location = devices.get(store, device["uuid"])["location"]
    assert location["city"]["name"] == "Lisbon" and location["timezone"]["code"] == "Europe/Lisbon"
    assert "Location set to Lisbon" in _flash(admin.get(response.headers["Location"]))
    for bad in ({"q": "Lisbon", "index": "99"}, {"q": "Lisbon", "index": "x"}, {"q": "", "index": "0"}):
        assert admin.post(f"/admin/devices/{device['uuid']}/location", data=bad).status_code == 400
    page = admin.get(f"/admin/devices/{device['uuid']}/location?q=Qwxzzy").get_data(as_text=True)
    assert "Find a place: no place called &#39;Qwxzzy&#39; is known" in page
    assert _invalid_inputs(page) == ["place-q"] and 'value="Qwxzzy"' in page


def test_unpair_asks_then_forgets_the_device(admin, device, store):
    page = admin.get(f"/admin/devices/{device['uuid']}/unpair").get_data(as_text=True)
    assert "Unpair Kitchen?" in page
    assert admin.post(f"/admin/devices/{device['uuid']}/unpair").status_code == 302
    assert store.devices.get(device["uuid"]) is None
    assert admin.get(f"/admin/devices/{device['uuid']}").status_code == 404


def test_unknown_device_is_an_html_404(admin):
    response = admin.get("/admin/devices/no-such-device")
    assert response.status_code == 404 and "unknown device" in response.get_data(as_text=True)
    assert response.mimetype == "text/html"


@pytest.mark.parametrize("path", ["/admin/nonexistent", "/admin/devices/x/nothing/here",
                                  "/admin/recordings?kind=secrets", "/admin/static/missing.css"])
def test_a_404_under_admin_is_the_styled_page(admin, path):
    response = admin.get(path)
    html = response.get_data(as_text=True)
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert "/admin/static/style.css" in html and "<h1>" in html and "Back to the dashboard" in html
    if "kind=" not in path:
        assert "Page not found" in html and path in html


def test_a_404_under_admin_needs_a_login_first(browser):
    response = browser.get("/admin/nonexistent")
    assert response.status_code == 302 and response.headers["Location"] == "/admin/login?next=/admin/nonexistent"


@pytest.mark.parametrize("path", ["/v1/nonexistent", "/nonexistent", "/v1/admin/devices/no-such-device",
                                  "/administrator"])
def test_404s_elsewhere_stay_json(admin, path):
    response = admin.get(path, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert response.status_code == 404 and response.mimetype == "application/json"
    assert "error" in response.json


# skill settings -----------------------------------------------------------------------------

META = {"skillMetadata": {"sections": [
    {"name": "Account", "fields": [
        {"type": "label", "label": "Your weather account"},
        {"name": "user", "type": "text", "label": "User", "value": "anne"},
        {"name": "api_key", "type": "password", "label": "API key", "value": "s3cret"},
        {"name": "hidden", "type": "text", "label": "Hidden", "value": "h", "hide": True}]},
    {"name": "Display", "fields": [
        {"name": "hourly", "type": "checkbox", "label": "Hourly", "value": "true"},
        {"name": "days", "type": "number", "label": "Days", "value": "3"},
        {"name": "units", "type": "select", "label": "Units", "value": "metric",
         "options": "Metric|metric;Imperial|imperial"}]}]}}
SKILL = "skill-weather.openvoiceos"


def _settings(**values) -> dict:
    """A settings form as the page sends it: each setting's input is namespaced."""
    return {f"setting-{name}": value for name, value in values.items()}


@pytest.fixture
def skill(store, device):
    gid = f"@{device['uuid']}|{SKILL}"
    skill_settings.upload_meta(store, device["uuid"], {"skill_gid": gid, **META})
    return gid


def test_settings_form_renders_every_field_type(admin, skill, device):
    html = admin.get(f"/admin/skills/shared/{SKILL}").get_data(as_text=True)
    assert "Your weather account" in html
    assert re.search(r'type="text" value="anne"', html)
    assert re.search(r'name="setting-api_key" type="password" value=""', html)  # never shown
    assert "s3cret" not in html and "Hidden" not in html
    assert re.search(r'type="checkbox" id="[^"]+" name="setting-hourly" checked', html)
    assert re.search(r'name="setting-days" type="number" value="3"', html)
    assert re.search(r'<option value="metric" selected>Metric</option>', html)
    overview = admin.get("/admin/skills").get_data(as_text=True)
    assert f"/admin/skills/shared/{SKILL}" in overview and f"/admin/skills/device/{device['uuid']}/{SKILL}" in overview


def test_shared_settings_saved_from_the_form_reach_the_device(admin, skill, device, store):
    form = _settings(user="bob", api_key="", days="5.5", units="imperial")  # hourly unticked
    assert admin.post(f"/admin/skills/shared/{SKILL}", data=form).status_code == 302
    values = skill_settings.v2_map(store, devices.get(store, device["uuid"]))[skill]
    assert values == {"user": "bob", "api_key": "s3cret", "hidden": "h", "hourly": False,
                      "days": 5.5, "units": "imperial"}


@pytest.mark.parametrize("field, value, message", [("days", "many", "Days: a number is needed"),
                                                   ("units", "kelvin", "Units: choose one of the options")])
def test_settings_form_refuses_bad_values(admin, skill, store, field, value, message):
    response = admin.post(f"/admin/skills/shared/{SKILL}",
                          data=_settings(**{"user": "typed", "days": "1", "units": "metric", field: value}))
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and message in html
    assert store.shared_skills.get(SKILL)["settings"]["user"] == "anne"
    # what was typed stays (the wrong number too), and the wrong field is the marked one
    assert re.search(r'name="setting-user" type="text" value="typed"', html)
    if field == "days":
        assert re.search(r'name="setting-days" type="number" value="many"', html)
    marked = _invalid_inputs(html)
    assert len(marked) == 1 and re.search(rf'id="{marked[0]}" name="setting-{field}"', html)


def test_device_settings_override_then_reset(admin, skill, device, store):
    path = f"/admin/skills/device/{device['uuid']}/{SKILL}"
    assert "saving gives it its own copy" in admin.get(path).get_data(as_text=True)
    admin.post(path, data=_settings(user="kitchen", days="1", units="metric", hourly="on"))
    own = devices.get(store, device["uuid"])
    assert skill_settings.v2_map(store, own)[skill]["user"] == "kitchen"
    assert store.shared_skills.get(SKILL)["settings"]["user"] == "anne"
    assert "own settings" in admin.get(path).get_data(as_text=True)
    admin.post(path, data={"action": "reset"})
    assert skill_settings.v2_map(store, devices.get(store, device["uuid"]))[skill]["user"] == "anne"


def test_device_page_shows_installed_skills_and_last_contact(admin, skill, device, store):
    uuid = device["uuid"]

    def page() -> tuple:
        html = admin.get(f"/admin/devices/{uuid}").get_data(as_text=True)
        return (re.search(r'<dl class="facts" id="contact">(.*?)</dl>', html, re.S).group(1),
                re.search(r'<section[^>]*id="skills">(.*?)</section>', html, re.S).group(1))

    contact, skills = page()
    assert contact.count("<dd>never</dd>") == 2
    # before the device reports its installed skills: those that sent settings
    assert f'<a href="/admin/skills/device/{uuid}/{SKILL}">Weather</a>' in skills
    assert "not reported its installed skills" in skills

    devices.record_manifest(store, uuid, {"skills": [{"name": SKILL, "skill_gid": skill},
                                                     {"name": "skill-timer.openvoiceos"}]})
    store.presence.seen(uuid)
    contact, skills = page()
    assert re.search(r"Last seen</dt><dd><time>\d{4}-\d\d-\d\d \d\d:\d\d</time> \(just now\)", contact)
    assert "Settings last synced</dt><dd>never</dd>" in contact
    assert f'<a href="/admin/skills/device/{uuid}/{SKILL}">Weather</a>' in skills
    assert 'skill-timer.openvoiceos <span class="muted">no settings</span>' in skills
    assert "not reported" not in skills


def test_unknown_skill_is_a_404_page(admin, device):
    assert admin.get("/admin/skills/shared/nothing.here").status_code == 404
    assert admin.get(f"/admin/skills/device/{device['uuid']}/nothing.here").status_code == 404


# recordings ----------------------------------------------------------------------------------



def test_no_recordings_is_said_once(admin):
    html = admin.get("/admin/recordings").get_data(as_text=True)
    assert html.count("Nothing recorded yet") == 1 and "0 recordings" not in html


def test_recordings_list_play_edit_and_delete(admin, store, device):
    utterance = datasets.save(store, datasets.UTTERANCES, device["uuid"], buzz_wav(0.2), "what time is it")
    sample = datasets.save(store, datasets.WAKEWORDS, device["uuid"], buzz_wav(0.2), "hey mycroft")
    html = admin.get("/admin/recordings").get_data(as_text=True)
    assert "what time is it" in html and "Kitchen" in html
    assert f"/admin/recordings/utterances/{utterance['recording_id']}/audio" in html
    audio = admin.get(f"/admin/recordings/utterances/{utterance['recording_id']}/audio")
    assert audio.status_code == 200 and audio.mimetype == "audio/wav" and audio.data == buzz_wav(0.2)

    admin.post(f"/admin/recordings/wakewords/{sample['recording_id']}",
               data={"transcription": "hey mycroft!", "audio_tag": "wake_word", "speaker_tag": "female"})
    saved = datasets.get(store, datasets.WAKEWORDS, sample["recording_id"])
    assert (saved["transcription"], saved["audio_tag"], saved["speaker_tag"]) == \
        ("hey mycroft!", "wake_word", "female")
    assert 'value="female"' in admin.get("/admin/recordings?kind=wakewords").get_data(as_text=True)

    admin.post(f"/admin/recordings/utterances/{utterance['recording_id']}/delete")
    assert datasets.list_all(store, datasets.UTTERANCES) == []
    assert admin.get(f"/admin/recordings/utterances/{utterance['recording_id']}/audio").status_code == 404
    assert admin.get("/admin/recordings?kind=secrets").status_code == 404


# metrics ---------------------------------------------------------------------------------------

def test_metrics_table_filters_and_chart(admin, store, device):
    now = time.time()
    for n, (kind, age) in enumerate([("stt", 3 * 86400), ("stt", 86400), ("intent", 3600), ("intent", 60)]):
        store.metrics.append({"metric_id": f"m{n}", "metric_type": kind, "uuid": device["uuid"],
                              "timestamp": now - age, "meta": {"n": n}})
    rows = '<code class="wrap">'
    html = admin.get("/admin/metrics").get_data(as_text=True)
    assert html.count(rows) == 4 and 'id="activity-chart"' in html
    assert len(re.findall(r'<rect [^>]*class="bar"', html)) >= 4
    html = admin.get("/admin/metrics?type=intent").get_data(as_text=True)
    assert html.count(rows) == 2
    day = time.strftime("%Y-%m-%d", time.localtime(now - 3 * 86400))
    html = admin.get(f"/admin/metrics?until={day}").get_data(as_text=True)
    assert html.count(rows) == 1
    html = admin.get("/admin/metrics?device=nobody").get_data(as_text=True)
    assert "No metrics match" in html
    response = admin.get("/admin/metrics?since=yesterday")
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and "From: &#39;yesterday&#39; is not a date" in html
    assert _invalid_inputs(html) == ["m-since"] and 'value="yesterday"' in html


def test_activity_chart_buckets():
    base = time.mktime((2026, 5, 4, 10, 0, 0, 0, 0, -1))
    chart = charts.activity([base, base + 60, base + 7200])  # within hours: per hour
    assert chart["unit"] == "hour" and [b["count"] for b in chart["bars"]] == [2, 0, 1]
    chart = charts.activity([base, base + 5 * 86400])
    assert chart["unit"] == "day" and chart["total"] == 2 and len(chart["bars"]) == 6
    chart = charts.activity([base, base + 200 * 86400])
    assert chart["unit"] == "week" and len(chart["bars"]) <= charts.MAX_BARS
    assert charts.activity([]) is None
    tallest = max(chart["bars"], key=lambda b: b["h"])
    assert tallest["y"] == charts.TOP and all(b["y"] + b["h"] <= charts.HEIGHT for b in chart["bars"])


# configuration ----------------------------------------------------------------------------------

def _config_form(admin) -> dict:
    """Every field as the page fills it in (what a browser would submit unchanged)."""
    html = admin.get("/admin/config").get_data(as_text=True)
    form = dict(re.findall(r'<input id="cfg-[^"]+" name="([^"]+)" value="([^"]*)"', html))
    form.update(re.findall(r'<select id="cfg-[^"]+" name="([^"]+)"[^>]*>(?:(?!</select>).)*?'
                           r'<option value="([^"]*)" selected', html, re.S))
    form.update({name: "on" for name in re.findall(r'type="checkbox" id="cfg-[^"]+" name="([^"]+)" checked', html)})
    return form


def test_config_page_never_shows_secrets(admin, config):
    html = admin.get("/admin/config").get_data(as_text=True)
    assert "owm-secret" not in html and ADMIN_KEY not in html
    assert 'placeholder="set (hidden)"' in html and 'placeholder="not set"' in html


def test_config_page_says_which_speech_engine_answers(admin, config, config_path):
    """The Speech to text card names the engine and model in use (the default: Whisper
    with the tiny.en model a package ships), and the model settings save like any other."""
    html = admin.get("/admin/config").get_data(as_text=True)
    status = re.search(r'<p id="stt-status">(.*?)</p>', html, re.S).group(1)
    assert "ovos-stt-plugin-fasterwhisper" in status and "tiny.en (packaged)" in status
    assert "fallback" not in status
    response = admin.post("/admin/config", data={**_config_form(admin), "stt.english_model": "base.en"})
    assert response.status_code in (200, 302), response.get_data(as_text=True)
    assert json.loads(config_path.read_text())["stt"]["english_model"] == "base.en"


def test_config_form_unchanged_changes_nothing(admin, config, config_path):
    before = json.dumps(config, sort_keys=True)
    response = admin.post("/admin/config", data=_config_form(admin))
    assert "Nothing changed" in _flash(admin.get(response.headers["Location"]))
    assert json.dumps(config, sort_keys=True) == before and not config_path.exists()


def test_config_form_saves_applies_and_names_restarts(admin, config, config_path):
    form = {**_config_form(admin), "lang": "de-de", "server.port": "7000", "listener.record_wakewords": "on",
            "microservices.wolfram_key": "wolfram-app-id", "microservices.email.smtp.port": "587"}
    response = admin.post("/admin/config", data=form)
    assert "Restart the backend to apply: server.port" in _flash(admin.get(response.headers["Location"]))
    assert config["lang"] == "de-de" and config["listener"]["record_wakewords"] is True
    assert config["microservices"]["wolfram_key"] == "wolfram-app-id"
    assert config["microservices"]["owm_key"] == "owm-secret-1234"  # blank field: kept
    assert config["server"]["port"] == 0  # the running server's port until a restart
    saved = json.loads(config_path.read_text())
    assert saved["server"]["port"] == 7000 and saved["microservices"]["email"]["smtp"]["port"] == 587
    assert "owm_key" not in saved["microservices"]


@pytest.mark.parametrize("field, value, message", [
    ("server.port", "seven", "Port: a whole number is needed"),
    ("server.port", "70000", "Port: must be between"),
    ("system_unit", "cubits", "Units: must be one of"),
    ("server.admin_key", "short", "New admin key: must be at least 16 characters"),
    ("server.code_ttl_hours", "0", "Pairing code lifetime (hours): must be positive"),
])
def test_config_form_refuses_bad_values(admin, config, config_path, field, value, message):
    before = json.dumps(config, sort_keys=True)
    form = {**_config_form(admin), field: value, "lang": "fr-fr"}
    response = admin.post("/admin/config", data=form)
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and message in html
    assert 'value="fr-fr"' in html  # what was typed stays in the form
    assert _invalid_inputs(html) == ["cfg-" + field.replace(".", "-").replace("_", "-")]
    if field not in ("server.admin_key", "system_unit"):  # not a secret, not a choice: the typed text
        assert re.search(rf'name="{field}" value="{value}"', html)
    assert json.dumps(config, sort_keys=True) == before and not config_path.exists()


SECRETS_SET = {"microservices.owm_key": "owm-secret-1234", "microservices.wolfram_key": "wolfram-1",
               "microservices.email.smtp.password": "smtp-pass"}


@pytest.fixture
def secrets_set(config):
    config["microservices"]["wolfram_key"] = "wolfram-1"
    config["microservices"]["email"]["smtp"]["password"] = "smtp-pass"


def test_stored_secrets_can_be_cleared_except_the_admin_key(admin, config, secrets_set):
    html = admin.get("/admin/config").get_data(as_text=True)
    offered = re.findall(r'<input type="checkbox" id="[^"]+" name="_clear_secret" value="([^"]+)"', html)
    assert sorted(offered) == sorted(SECRETS_SET)  # not server.admin_key: that would lock the owner out
    assert "Remove the stored SMTP password" in html
    response = admin.post("/admin/config", data={**_config_form(admin), "_clear_secret": [
        "microservices.owm_key", "microservices.email.smtp.password"]})
    assert response.status_code == 302
    assert config["microservices"]["owm_key"] == "" and config["microservices"]["email"]["smtp"]["password"] == ""
    assert config["microservices"]["wolfram_key"] == "wolfram-1"  # not ticked: kept
    html = admin.get("/admin/config").get_data(as_text=True)
    assert re.findall(r'name="_clear_secret" value="([^"]+)"', html) == ["microservices.wolfram_key"]


def test_clearing_and_typing_a_secret_at_once_is_refused(admin, config, secrets_set):
    response = admin.post("/admin/config", data={**_config_form(admin), "microservices.owm_key": "new-key",
                                                 "_clear_secret": "microservices.owm_key", "lang": "fr-fr"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400 and "OpenWeatherMap key: type a new value or tick" in html
    assert _invalid_inputs(html) == ["cfg-microservices-owm-key"] and "new-key" not in html
    assert re.search(r'value="microservices.owm_key" checked', html)  # the tick is kept too
    assert config["microservices"]["owm_key"] == "owm-secret-1234" and config["lang"] != "fr-fr"
    # the admin key cannot be cleared by a forged form either
    response = admin.post("/admin/config", data={**_config_form(admin), "_clear_secret": "server.admin_key"})
    assert response.status_code == 302 and config["server"]["admin_key"] == ADMIN_KEY


def test_a_stored_skill_password_can_be_cleared(admin, skill, store):
    path = f"/admin/skills/shared/{SKILL}"
    assert "Remove the stored API key" in admin.get(path).get_data(as_text=True)
    form = _settings(user="anne", days="3", units="metric")
    response = admin.post(path, data={**form, "setting-api_key": "typed", "_clear_secret": "api_key"})
    assert response.status_code == 400 and "API key: type a new value or tick" in response.get_data(as_text=True)
    assert admin.post(path, data={**form, "_clear_secret": "api_key"}).status_code == 302
    assert store.shared_skills.get(SKILL)["settings"]["api_key"] == ""
    assert "Remove the stored API key" not in admin.get(path).get_data(as_text=True)  # nothing left to clear


def test_default_location_by_place_search(admin, config):
    assert "Lisbon, Lisbon, Portugal" in admin.get("/admin/config/location?q=lisbon").get_data(as_text=True)
    admin.post("/admin/config/location", data={"q": "lisbon", "index": "0"})
    assert config["location"]["city"]["name"] == "Lisbon" and "address" not in config["location"]
