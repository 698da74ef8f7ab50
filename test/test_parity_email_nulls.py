"""mycroft-core turns every empty string of a JSON body into null, so the e-mail route
(`PUT /v1/device/{uuid}/message`, api-contract §3.9) reads a null title, body or sender
as empty, not as a bad request. Real server, real SMTP server (aiosmtpd) on 127.0.0.1."""
import pytest

from test_email import OWNER, Inbox, put_message, smtp_server
from standins import paired_client


@pytest.fixture
def inbox(config):
    """An SMTP server on 127.0.0.1 the backend is configured to send through."""
    inbox = Inbox()
    controller = smtp_server(inbox)
    config["microservices"]["email"] = {"recipient": OWNER, "smtp": {
        "host": "127.0.0.1", "port": controller.port, "security": "plain",
        "username": "", "password": "", "ca_file": ""}}
    yield inbox
    controller.stop()


@pytest.fixture
def device(store, config, live_server, tmp_path):
    with paired_client(store, config, live_server, tmp_path) as client:
        yield client


def test_a_null_title_means_no_title(device, inbox):
    response = put_message(device, {"title": None, "body": "the body", "sender": "skill-x"})
    assert response.status_code == 200 and response.json()["success"] is True
    [received] = inbox.messages
    assert received["message"]["Subject"] == f"Message from Device-{device.uuid[:8]}"
    assert received["message"].get_content().startswith("the body")


def test_a_null_body_means_an_empty_body(device, inbox):
    response = put_message(device, {"title": "Reminder", "body": None, "sender": "skill-x"})
    assert response.status_code == 200
    message = inbox.messages[0]["message"]
    assert message["Subject"] == "Reminder"
    text = message.get_content().replace("\r\n", "\n")
    assert text.lstrip().startswith("--\nSent by skill-x")


def test_a_null_sender_means_no_sender(device, inbox):
    assert put_message(device, {"title": "t", "body": "b", "sender": None}).status_code == 200
    message = inbox.messages[0]["message"]
    assert message["X-OVOS-Skill"] is None and "Sent by a skill" in message.get_content()


def test_nothing_but_nulls_is_still_a_400(device, inbox):
    response = put_message(device, {"title": None, "body": None, "sender": None})
    assert response.status_code == 400
    assert "needs a title or a body" in response.json()["error"]
    assert inbox.messages == []
