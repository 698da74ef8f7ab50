"""E-mail to the owner: the real client's `email_send` through the real server to a real SMTP
server (aiosmtpd) on 127.0.0.1, plain, STARTTLS and implicit TLS (self-signed certificate
made here with the openssl command)."""
import email
import email.policy
import ssl
import subprocess

import pytest
import requests
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from conftest import free_port
from ovos_skill_personal_backend.backend import devices
from ovos_skill_personal_backend.backend.services.mail import PER_HOUR
from standins import paired_client

OWNER = "owner@example.org"
USER, PASSWORD = "backend@example.org", "smtp-secret-pw"


class Inbox:
    """An aiosmtpd handler keeping what it receives."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append({"from": envelope.mail_from, "to": envelope.rcpt_tos,
                              "message": message, "tls": session.ssl is not None,
                              "login": session.authenticated})
        return "250 OK"


def check_login(server, session, envelope, mechanism, auth_data):
    ok = (auth_data.login, auth_data.password) == (USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok, handled=False)  # not handled: aiosmtpd answers 235/535


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    return str(cert), context


def smtp_server(inbox, **options):
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), **options)
    controller.start()
    return controller


@pytest.fixture
def inbox():
    return Inbox()


@pytest.fixture
def plain_smtp(inbox, config):
    controller = smtp_server(inbox)
    config["microservices"]["email"] = {"recipient": OWNER, "smtp": {
        "host": "127.0.0.1", "port": controller.port, "security": "plain",
        "username": "", "password": "", "ca_file": ""}}
    yield controller
    controller.stop()


@pytest.fixture
def device(store, config, live_server, tmp_path):
    with paired_client(store, config, live_server, tmp_path) as client:
        yield client


def put_message(device, body):
    return requests.put(f"{device.backend_url}/v1/device/{device.uuid}/message", json=body,
                        headers={"Authorization": f"Bearer {device.login['accessToken']}"},
                        timeout=10)


def test_a_device_mails_its_owner(device, inbox, plain_smtp):
    reply = device.email_send("Shopping list", "milk\neggs\n", "skill-shopping.someone")

    assert reply["success"] is True and reply["uuid"] == device.uuid
    [received] = inbox.messages
    assert received["to"] == [OWNER]
    message = received["message"]
    assert message["Subject"] == "Shopping list"
    assert message["To"] == OWNER
    assert message["X-OVOS-Skill"] == "skill-shopping.someone"
    assert message["Message-ID"] == reply["message_id"]
    text = message.get_content().replace("\r\n", "\n")
    assert text.startswith("milk\neggs\n")
    assert "skill-shopping.someone" in text and device.uuid in text


def test_the_device_email_wins_over_the_configured_recipient(device, inbox, plain_smtp, store):
    devices.update(store, device.uuid, {"email": "kitchen@example.org"})
    device.email_send("hello", "from the kitchen", "skill-x")
    assert inbox.messages[0]["to"] == ["kitchen@example.org"]


def test_starttls_with_login(device, inbox, config, certificate):
    cert, context = certificate
    controller = smtp_server(inbox, tls_context=context, require_starttls=True,
                             authenticator=check_login, auth_require_tls=True)
    config["microservices"]["email"] = {"recipient": OWNER, "smtp": {
        "host": "127.0.0.1", "port": controller.port, "security": "starttls",
        "username": USER, "password": PASSWORD, "ca_file": cert}}
    try:
        assert device.email_send("over starttls", "body", "skill-x")["success"] is True
    finally:
        controller.stop()
    [received] = inbox.messages
    assert received["tls"] and received["login"]
    assert received["from"] == USER and received["message"]["From"] == USER


def test_implicit_tls_with_login(device, inbox, config, certificate):
    cert, context = certificate
    # aiosmtpd does not count implicit TLS as TLS for its auth_require_tls check
    controller = smtp_server(inbox, ssl_context=context, authenticator=check_login,
                             auth_require_tls=False)
    config["microservices"]["email"] = {"recipient": OWNER, "smtp": {
        "host": "127.0.0.1", "port": controller.port, "security": "ssl",
        "username": USER, "password": PASSWORD, "ca_file": cert}}
    try:
        assert device.email_send("over tls", "body", "skill-x")["success"] is True
    finally:
        controller.stop()
    assert inbox.messages[0]["login"] and inbox.messages[0]["message"]["Subject"] == "over tls"


def test_an_untrusted_certificate_is_refused(device, inbox, config, certificate):
    cert, context = certificate
    controller = smtp_server(inbox, ssl_context=context, authenticator=check_login)
    config["microservices"]["email"] = {"recipient": OWNER, "smtp": {
        "host": "127.0.0.1", "port": controller.port, "security": "ssl",
        "username": USER, "password": PASSWORD, "ca_file": ""}}
    try:
        response = put_message(device, {"title": "t", "body": "b", "sender": "s"})
    finally:
        controller.stop()
    assert response.status_code == 502 and "TLS with the SMTP server" in response.json()["error"]
    assert inbox.messages == []


def test_a_wrong_password_is_a_502_that_does_not_show_it(device, inbox, config, certificate):
    cert, context = certificate
    controller = smtp_server(inbox, tls_context=context, authenticator=check_login)
    config["microservices"]["email"] = {"recipient": OWNER, "smtp": {
        "host": "127.0.0.1", "port": controller.port, "security": "starttls",
        "username": USER, "password": "wrong-password", "ca_file": cert}}
    try:
        response = put_message(device, {"title": "t", "body": "b", "sender": "s"})
    finally:
        controller.stop()
    assert response.status_code == 502
    assert "refused the login" in response.json()["error"]
    assert "wrong-password" not in response.text and inbox.messages == []


def test_a_password_is_never_sent_in_the_clear_to_another_machine(device, config):
    config["microservices"]["email"] = {"recipient": OWNER, "smtp": {
        "host": "192.0.2.1", "port": 25, "security": "plain",
        "username": USER, "password": PASSWORD, "ca_file": ""}}
    response = put_message(device, {"title": "t", "body": "b", "sender": "s"})
    assert response.status_code == 503 and "unencrypted" in response.json()["error"]


def test_unconfigured_mail_is_a_503(device, config):
    assert "set microservices.email.smtp.host" in device.email_send("t", "b", "s")["error"]
    config["microservices"]["email"]["smtp"]["host"] = "127.0.0.1"
    response = put_message(device, {"title": "t", "body": "b", "sender": "s"})
    assert response.status_code == 503 and "no recipient" in response.json()["error"]


def test_an_unreachable_smtp_server_is_a_502(device, config):
    config["microservices"]["email"] = {"recipient": OWNER, "smtp": {
        "host": "127.0.0.1", "port": free_port(), "security": "plain",
        "username": "", "password": "", "ca_file": ""}}
    response = put_message(device, {"title": "t", "body": "b", "sender": "s"})
    assert response.status_code == 502
    assert "cannot reach the SMTP server 127.0.0.1" in response.json()["error"]


@pytest.mark.parametrize("body, words", [
    ({"title": "hi\r\nBcc: victim@example.org", "body": "b", "sender": "s"},
     "title must be a single line"),
    ({"title": "hi", "body": "b", "sender": "s\nBcc: victim@example.org"},
     "sender must be a single line"),
    ({"title": 3, "body": "b", "sender": "s"}, "title must be a string"),
    ({"title": "t" * 201, "body": "b", "sender": "s"}, "title is longer than 200"),
    ({"title": "t", "body": "b" * (64 * 1024 + 1), "sender": "s"}, "body is longer than"),
    ({"title": "", "body": "", "sender": "s"}, "needs a title or a body"),
    (["title", "body"], "expected a JSON object"),
])
def test_bad_messages_are_400_and_never_sent(device, inbox, plain_smtp, body, words):
    response = put_message(device, body)
    assert response.status_code == 400 and words in response.json()["error"]
    assert inbox.messages == []


def test_only_the_device_itself_may_send(device, inbox, plain_smtp, store, config, live_server,
                                         tmp_path):
    with paired_client(store, config, live_server, tmp_path) as other:
        response = requests.put(f"{live_server.url}/v1/device/{device.uuid}/message",
                                json={"title": "t", "body": "b", "sender": "s"},
                                headers={"Authorization": f"Bearer {other.login['accessToken']}"},
                                timeout=10)
    assert response.status_code == 401 and inbox.messages == []


def test_a_runaway_skill_is_slowed_down(device, inbox, plain_smtp):
    for number in range(PER_HOUR):
        assert device.email_send(f"message {number}", "b", "s")["success"] is True
    response = put_message(device, {"title": "one too many", "body": "b", "sender": "s"})
    assert response.status_code == 429
    assert len(inbox.messages) == PER_HOUR


# mycroft-core turns every empty string of a JSON body into null: null means empty -----------

def test_a_null_title_means_no_title(device, inbox, plain_smtp):
    response = put_message(device, {"title": None, "body": "the body", "sender": "skill-x"})
    assert response.status_code == 200 and response.json()["success"] is True
    [received] = inbox.messages
    assert received["message"]["Subject"] == f"Message from Device-{device.uuid[:8]}"
    assert received["message"].get_content().startswith("the body")


def test_a_null_body_means_an_empty_body(device, inbox, plain_smtp):
    response = put_message(device, {"title": "Reminder", "body": None, "sender": "skill-x"})
    assert response.status_code == 200
    message = inbox.messages[0]["message"]
    assert message["Subject"] == "Reminder"
    text = message.get_content().replace("\r\n", "\n")
    assert text.lstrip().startswith("--\nSent by skill-x")


def test_a_null_sender_means_no_sender(device, inbox, plain_smtp):
    assert put_message(device, {"title": "t", "body": "b", "sender": None}).status_code == 200
    message = inbox.messages[0]["message"]
    assert message["X-OVOS-Skill"] is None and "Sent by a skill" in message.get_content()


def test_nothing_but_nulls_is_still_a_400(device, inbox, plain_smtp):
    response = put_message(device, {"title": None, "body": None, "sender": None})
    assert response.status_code == 400
    assert "needs a title or a body" in response.json()["error"]
    assert inbox.messages == []
