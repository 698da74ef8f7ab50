"""The admin page in a real browser: Debian's chromium, driven by selenium through
chromedriver, against the real server on 127.0.0.1. Devices are the real
ovos-backend-client.

Screenshots of every page, at phone (390x844) and desktop (1280x900) size, go to
test/artifacts/ (kept by CI as test artifacts).

Needs: `apt-get install chromium chromium-driver`, `pip install selenium`.
"""
import base64
import os
import shutil
import tempfile
import time
from uuid import uuid4

import pytest

from conftest import ADMIN_KEY, free_port, make_config
from helpers import activate, device_backend, request_code, restore_identity  # noqa: F401
from ovos_skill_personal_backend.backend import create_app, datasets, pairing, skill_settings
from ovos_skill_personal_backend.backend.server import BackendServer
from ovos_skill_personal_backend.backend.store import Store
from audio import buzz_wav

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTIFACTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "artifacts")
SIZES = {"phone": (390, 844), "desktop": (1280, 900)}
SKILL = "skill-weather.openvoiceos"
META = {"skillMetadata": {"sections": [{"name": "Forecast", "fields": [
    {"name": "city", "type": "text", "label": "City for the forecast", "value": "Lawrence"},
    {"name": "hourly", "type": "checkbox", "label": "Hourly forecast", "value": "false"},
    {"name": "units", "type": "select", "label": "Units", "value": "metric",
     "options": "Metric|metric;Imperial|imperial"}]}]}}

missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(path)]
try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:
    missing.append("the selenium Python package")
pytestmark = [
    pytest.mark.skipif(bool(missing), reason=f"browser tests need {', '.join(missing)} "
                                             "(apt-get install chromium chromium-driver; pip install selenium)"),
    pytest.mark.usefixtures("restore_identity"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser")
    port = free_port()  # a real port, so the dashboard shows the URL devices would use
    config = make_config(folder / "data", pairing="confirm", port=port)
    store = Store(config["data_path"])
    app = create_app(config, store, config_path=str(folder / "ovos_backend.conf"))
    running = BackendServer(app, "127.0.0.1", port).start()
    running.store, running.config = store, config
    yield running
    running.stop()


@pytest.fixture(scope="module")
def driver():
    profile = tempfile.mkdtemp(prefix="pb-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
                 "--autoplay-policy=no-user-gesture-required",
                 f"--user-data-dir={profile}", "--window-size=1280,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    browser.implicitly_wait(0)
    os.makedirs(ARTIFACTS, exist_ok=True)
    yield browser
    browser.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _wait(driver, condition, timeout: float = 10):
    return WebDriverWait(driver, timeout).until(condition)


def _open(driver, server, path: str) -> None:
    driver.get(server.url + path)
    _wait(driver, lambda d: d.execute_script("return document.readyState") == "complete")


def _login(driver, server) -> None:
    _open(driver, server, "/admin/")
    if "/admin/login" not in driver.current_url:
        return
    field = driver.find_element(By.ID, "admin_key")
    field.send_keys(ADMIN_KEY)
    field.send_keys(Keys.ENTER)
    _wait(driver, expected_conditions.presence_of_element_located((By.ID, "pending")))


def _click(driver, element) -> None:
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def _screenshot(driver, name: str) -> str:
    """A full-page PNG (beyond the viewport) through the DevTools protocol."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    path = os.path.join(ARTIFACTS, f"{name}.png")
    with open(path, "wb") as f:
        f.write(base64.b64decode(shot["data"]))
    return path


def _unlabelled(driver) -> list:
    """The controls without a label a screen reader can read."""
    return driver.execute_script("""
        return Array.from(document.querySelectorAll('input, select, textarea, button'))
          .filter(e => e.type !== 'hidden')
          .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                       && !(e.tagName === 'BUTTON' && e.textContent.trim()))
          .map(e => e.outerHTML.slice(0, 80));""")


def _severe_console_messages(driver) -> list:
    """Errors the page caused (a CSP violation is one); favicon misses do not count."""
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" and "favicon.ico" not in entry["message"]]




# the owner's journey ----------------------------------------------------------------------------

def test_login_approve_edit_a_setting_and_open_a_recording(driver, server, tmp_path):
    # a real device asks to pair: in confirm mode it waits for the owner
    device = device_backend(server.url, tmp_path / "device.json")
    code = request_code(device)
    _login(driver, server)
    _open(driver, server, "/admin/")
    _wait(driver, expected_conditions.presence_of_element_located((By.ID, f"pending-{code['code']}")))
    _screenshot(driver, "journey-1-pending")
    _click(driver, driver.find_element(By.CSS_SELECTOR, f"button[aria-label='Approve {code['code']}']"))
    _wait(driver, expected_conditions.text_to_be_present_in_element(
        (By.CSS_SELECTOR, ".flash"), f"Code {code['code']} approved"))
    login = activate(device, code, core_version="2.1.1", platform="browser-test")
    assert login["uuid"] == code["state"]

    # the device's skill uploads its settings form; the owner edits it in the page
    gid = f"@{device.uuid}|{SKILL}"
    assert device.device_upload_skill_metadata({"skill_gid": gid, "display_name": "Weather", **META}).ok
    device.device_upload_skills_data({"skills": [{"name": SKILL, "skill_gid": gid}], "blacklist": []})
    _open(driver, server, "/admin/skills")
    _click(driver, driver.find_element(By.LINK_TEXT, "Weather"))
    city = _wait(driver, expected_conditions.presence_of_element_located(
        (By.XPATH, "//label[normalize-space()='City for the forecast']/following-sibling::input")))
    city.clear()
    city.send_keys("Lisbon")
    _click(driver, driver.find_element(By.XPATH, "//label[normalize-space()='Hourly forecast']"))
    _screenshot(driver, "journey-2-skill-form")
    _click(driver, driver.find_element(By.CSS_SELECTOR, "#skill-form button[value='save']"))
    _wait(driver, expected_conditions.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash"), "Saved"))
    # what the device reads at its next poll
    assert device.device_get_skill_settings() == {gid: {"city": "Lisbon", "hourly": True, "units": "metric"}}
    entry = device.device_get_skill_settings_v1()[0]
    assert [f["value"] for f in entry["skillMetadata"]["sections"][0]["fields"]] == ["Lisbon", "true", "metric"]

    # a wake-word sample the device contributed: play it, tag it
    record = datasets.save(server.store, datasets.WAKEWORDS, device.uuid, buzz_wav(0.6), "hey mycroft")
    _open(driver, server, "/admin/recordings?kind=wakewords")
    audio = driver.find_element(By.CSS_SELECTOR, f"#rec-{record['recording_id']} audio")
    duration = _wait(driver, lambda d: d.execute_script(
        "var a = arguments[0]; return a.readyState >= 1 && a.duration > 0 ? a.duration : false", audio))
    assert abs(duration - 0.6) < 0.05
    played = driver.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "arguments[0].play().then(function () { done('playing'); }, function (e) { done(String(e)); });", audio)
    assert played == "playing"
    _wait(driver, lambda d: d.execute_script("return arguments[0].currentTime > 0", audio))
    tag = driver.find_element(By.ID, f"a-{record['recording_id']}")
    tag.clear()
    tag.send_keys("wake_word")
    tag.submit()
    _wait(driver, expected_conditions.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash"), "Recording saved"))
    assert datasets.get(server.store, datasets.WAKEWORDS, record["recording_id"])["audio_tag"] == "wake_word"
    assert _severe_console_messages(driver) == []


# every page, at phone and desktop size ----------------------------------------------------------

def _pages(server) -> dict:
    devices = server.store.devices.all()
    uuid = next(iter(devices)) if devices else None
    pages = {"dashboard": "/admin/", "devices": "/admin/devices", "skills": "/admin/skills",
             "recordings": "/admin/recordings?kind=wakewords", "metrics": "/admin/metrics",
             "config": "/admin/config", "config-location": "/admin/config/location?q=Portland"}
    if uuid:
        pages.update({"device": f"/admin/devices/{uuid}",
                      "device-location": f"/admin/devices/{uuid}/location?q=Lisbon",
                      "skill": f"/admin/skills/device/{uuid}/{SKILL}"})
    return pages


@pytest.fixture(scope="module")
def populated(server):
    """A paired device, its skill settings, metrics and recordings, so no page is empty."""
    store = server.store
    if not store.devices.keys():
        pairing.pair_directly(store, server.config)
    uuid = store.devices.keys()[0]
    skill_settings.upload_meta(store, uuid, {"skill_gid": f"@{uuid}|{SKILL}", "display_name": "Weather", **META})
    now = time.time()
    for n in range(40):
        store.metrics.append({"metric_id": f"m{n}", "metric_type": ("intent_service", "stt", "tts")[n % 3],
                              "uuid": uuid, "timestamp": now - n ** 1.6 * 900,  # busier lately
                              "meta": {"intent_type": "weather.forecast", "time": 0.12 + n / 100}})
    datasets.save(store, datasets.UTTERANCES, uuid, buzz_wav(0.6), "what is the weather tomorrow")
    datasets.save(store, datasets.WAKEWORDS, uuid, buzz_wav(0.6), "hey mycroft")
    return uuid


@pytest.mark.parametrize("size", SIZES)
def test_every_page_fits_is_labelled_and_screenshotted(driver, server, populated, size):
    width, height = SIZES[size]
    driver.set_window_size(width, height)
    _login(driver, server)
    driver.get_log("browser")  # start clean
    for name, path in _pages(server).items():
        _open(driver, server, path)
        assert driver.find_element(By.TAG_NAME, "h1").text, name
        # nothing wider than the screen (a phone would scroll sideways)
        overflow = driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{name} is {overflow}px too wide at {size} size"
        assert _unlabelled(driver) == [], f"{name}: {_unlabelled(driver)}"
        _screenshot(driver, f"{name}-{size}")
    assert _severe_console_messages(driver) == []
    driver.delete_all_cookies()
    _open(driver, server, "/admin/")
    _screenshot(driver, f"login-{size}")
    driver.set_window_size(*SIZES["desktop"])


def test_keyboard_only(driver, server, populated):
    """Skip link first, then every control reachable with Tab, with a visible focus ring."""
    _login(driver, server)
    _open(driver, server, f"/admin/devices/{populated}")
    body = driver.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    active = driver.switch_to.active_element
    assert active.text == "Skip to content"
    outline = driver.execute_script("return getComputedStyle(arguments[0]).outlineStyle", active)
    assert outline != "none"
    active.send_keys(Keys.ENTER)
    assert driver.execute_script("return document.activeElement.id") == "main"
    # Tab from the content reaches the first form field, and typing into it works
    reached = []
    for _ in range(6):
        driver.switch_to.active_element.send_keys(Keys.TAB)
        reached.append(driver.execute_script("return document.activeElement.id"))
        if reached[-1] == "d-name":
            break
    assert "d-name" in reached
    field = driver.switch_to.active_element
    field.send_keys(Keys.END, " 2")
    field.send_keys(Keys.ENTER)  # submits the form
    _wait(driver, expected_conditions.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash"), "Device saved"))
    assert server.store.devices.get(populated)["name"].endswith(" 2")


# a phone never scrolls sideways, whatever the data -----------------------------------------------

LONG = "Wohnzimmer_Regal_links_neben_dem_Fernseher_und_der_Stehlampe"  # one unbreakable "word"
LONG_SKILL = "skill_" + "very_long_skill_name_" * 4 + "openvoiceos"


@pytest.fixture(scope="module")
def long_server(tmp_path_factory):
    """A backend whose every name is long and unbreakable: config file path, public URL,
    device name, placement, platform, skill id, labels, transcripts, metric types, and a
    device waiting to pair plus one denied, both described at length."""
    folder = tmp_path_factory.mktemp("long") / ("a_folder_name_without_any_spaces_" * 3).strip("_")
    port = free_port()
    config = make_config(folder / "data", pairing="confirm", port=port,
                         url="http://" + "backend" * 8 + ".example.org:6712/" + LONG)
    store = Store(config["data_path"])
    app = create_app(config, store, config_path=str(folder / "ovos_backend.conf"))
    running = BackendServer(app, "127.0.0.1", port).start()
    running.store, running.config = store, config
    uuid = _long_device(store, config)
    for _ in range(2):
        code = _long_pairing_request(running.url)
    pairing.deny(store, code)
    running.uuid = uuid
    yield running
    running.stop()


def _long_device(store, config) -> str:
    """A paired device with long names everywhere the pages show one."""
    from ovos_skill_personal_backend.backend import devices
    uuid = pairing.pair_directly(store, config)["uuid"]
    devices.update(store, uuid, {"name": LONG * 3, "device_location": LONG, "email": LONG + "@example.org"})
    devices.record_version(store, uuid, {"coreVersion": LONG, "platform": LONG * 2})
    field = {"name": "city", "type": "text", "label": "Label-" + LONG, "value": LONG * 3}
    choice = {"name": "units", "type": "select", "label": "Units", "value": "a",
              "options": f"{LONG * 2}|a;short|b"}
    skill_settings.upload_meta(store, uuid, {"skill_gid": f"@{uuid}|{LONG_SKILL}", "display_name": LONG,
                                             "skillMetadata": {"sections": [{"name": LONG, "fields": [field, choice]}]}})
    devices.record_manifest(store, uuid, {"skills": [{"name": LONG_SKILL, "skill_gid": f"@{uuid}|{LONG_SKILL}"},
                                                     {"name": LONG_SKILL + "-without-settings"}]})
    store.metrics.append({"metric_id": "long", "metric_type": LONG, "uuid": uuid, "timestamp": time.time(),
                          "meta": {"utterance": LONG * 4}})
    for kind in (datasets.UTTERANCES, datasets.WAKEWORDS):
        datasets.save(store, kind, uuid, buzz_wav(0.2), (LONG * 3)[:200])
    return uuid


def _long_pairing_request(url: str) -> str:
    """A device asks to pair and polls once, describing itself at length; its code."""
    import requests
    state = str(uuid4())
    code = requests.get(f"{url}/v1/device/code", params={"state": state, "packaging": LONG}, timeout=10).json()
    requests.post(f"{url}/v1/device/activate", timeout=10, json={
        "state": state, "token": code["token"], "coreVersion": LONG, "platform": LONG * 2})
    return code["code"]


def _long_pages(server) -> dict:
    uuid = server.uuid
    return {"dashboard": "/admin/", "devices": "/admin/devices", "device": f"/admin/devices/{uuid}",
            "device-location": f"/admin/devices/{uuid}/location?q=Lisbon",
            "device-place-unknown": f"/admin/devices/{uuid}/location?q={LONG}",
            "unpair": f"/admin/devices/{uuid}/unpair", "skills": "/admin/skills",
            "shared-skill": f"/admin/skills/shared/{LONG_SKILL}", "skill": f"/admin/skills/device/{uuid}/{LONG_SKILL}",
            "utterances": "/admin/recordings", "wakewords": "/admin/recordings?kind=wakewords",
            "metrics": "/admin/metrics", "metrics-refused": f"/admin/metrics?since={LONG}",
            "config": "/admin/config", "not-found": f"/admin/{LONG * 3}"}


def _sideways(driver) -> int:
    """How far the page scrolls sideways (0: not at all)."""
    return driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")


def test_no_page_scrolls_sideways_on_a_phone(driver, long_server):
    driver.set_window_size(*SIZES["phone"])
    try:
        driver.delete_all_cookies()
        _login(driver, long_server)
        assert driver.execute_script("return window.innerWidth") == SIZES["phone"][0]
        wide = {}
        for name, path in _long_pages(long_server).items():
            _open(driver, long_server, path)
            _screenshot(driver, f"long-names-{name}-phone")
            if _sideways(driver) > 0:
                wide[name] = _sideways(driver)
            assert _unlabelled(driver) == [], f"{name}: {_unlabelled(driver)}"
        _open(driver, long_server, f"/admin/devices/{long_server.uuid}")
        form = driver.find_element(By.ID, "d-email")  # a refused form: the error and the marked field
        form.clear()
        form.send_keys(LONG)
        driver.execute_script("document.getElementById('d-email').type = 'text'")
        _click(driver, driver.find_element(By.CSS_SELECTOR, "form.fields button[type=submit]"))
        _wait(driver, expected_conditions.presence_of_element_located((By.ID, "form-error")))
        if _sideways(driver) > 0:
            wide["device-refused"] = _sideways(driver)
        driver.delete_all_cookies()
        _open(driver, long_server, f"/admin/{LONG * 3}")  # the login page, with where to go after it
        if _sideways(driver) > 0:
            wide["login"] = _sideways(driver)
        assert wide == {}, f"pages wider than a phone (px too wide): {wide}"
    finally:
        driver.set_window_size(*SIZES["desktop"])


def test_the_refused_field_is_marked_and_focused(driver, server, populated):
    _login(driver, server)
    _open(driver, server, "/admin/metrics?since=yesterday")
    field = driver.switch_to.active_element
    assert field.get_attribute("id") == "m-since" and field.get_attribute("aria-invalid") == "true"
    marked, plain = (driver.execute_script("return getComputedStyle(arguments[0]).borderTopWidth", element)
                     for element in (field, driver.find_element(By.ID, "m-until")))
    assert float(marked.rstrip("px")) > float(plain.rstrip("px"))  # the CSS class shows it
