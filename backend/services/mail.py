"""E-mail from devices to their owner (api-contract §3.9), through the owner's SMTP server.

A skill on a device asks "mail this to my owner"; the message goes to the device's
`email`, else to `microservices.email.recipient`. The sender a skill names is shown
in the mail, never used as an address. SMTP security is `ssl` (implicit TLS, port
465), `starttls` (port 587) or `plain`; with `plain` the password is only sent to a
server on this machine, so a LAN sniffer never sees it.
"""
import smtplib
import socket
import ssl
import threading
import time
from collections import defaultdict, deque
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Dict

from ovos_utils.log import LOG

from ..config import is_loopback
from ..errors import BadRequest, ServiceUnavailable, TooManyRequests, UpstreamError

TITLE_LIMIT = 200
SENDER_LIMIT = 200
BODY_LIMIT = 64 * 1024
# a runaway skill must not flood the owner's inbox (or get the SMTP account banned)
PER_HOUR = 30


def message_fields(body) -> Dict[str, str]:
    """`{"title", "body", "sender"}` checked: strings, bounded, no header injection.
    A null field is an empty one: mycroft-core turns every "" of a JSON body into null."""
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object with title, body and sender")
    fields = {}
    for name, limit, one_line in (("title", TITLE_LIMIT, True), ("body", BODY_LIMIT, False),
                                  ("sender", SENDER_LIMIT, True)):
        value = body.get(name)
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise BadRequest(f"{name} must be a string")
        if len(value) > limit:
            raise BadRequest(f"{name} is longer than {limit} characters")
        if one_line and any(c in value for c in "\r\n\0"):
            raise BadRequest(f"{name} must be a single line")
        fields[name] = value.strip() if one_line else value
    if not fields["title"] and not fields["body"]:
        raise BadRequest("the message needs a title or a body")
    return fields


class Mailer:
    """Sends through `microservices.email.smtp`, read at each send (admin edits apply at once)."""

    def __init__(self, config: dict):
        self.config = config
        self._sent: Dict[str, deque] = defaultdict(deque)
        self._lock = threading.Lock()

    @property
    def settings(self) -> dict:
        return self.config["microservices"]["email"]

    def recipient(self, device: dict) -> str:
        to = device.get("email") or self.settings["recipient"]
        if not to:
            raise ServiceUnavailable("no recipient: set this device's email or "
                                     "microservices.email.recipient")
        return to

    def send_for_device(self, device: dict, fields: Dict[str, str]) -> dict:
        """Mail a device's message to its owner; raises a clear error when it cannot."""
        smtp = self.settings["smtp"]
        if not smtp["host"]:
            raise ServiceUnavailable("e-mail is not configured on this backend: "
                                     "set microservices.email.smtp.host")
        to = self.recipient(device)
        self._count(device["uuid"])
        message = self.compose(device, fields, to)
        self.deliver(message)
        LOG.info(f"mail from device {device['uuid']} ({fields['sender'] or 'no sender'}) sent")
        return {"success": True, "uuid": device["uuid"], "message_id": message["Message-ID"]}

    def compose(self, device: dict, fields: Dict[str, str], to: str) -> EmailMessage:
        smtp = self.settings["smtp"]
        message = EmailMessage()
        message["Subject"] = fields["title"] or f"Message from {device['name']}"
        message["From"] = smtp["username"] if "@" in smtp["username"] else to
        message["To"] = to
        message["Date"] = formatdate(localtime=True)
        message["Message-ID"] = make_msgid(domain="ovos-personal-backend")
        if fields["sender"]:
            message["X-OVOS-Skill"] = fields["sender"]
        skill = fields["sender"] or "a skill"
        footer = f"\n\n--\nSent by {skill} on {device['name']} ({device['uuid']})"
        message.set_content(fields["body"] + footer)
        return message

    def deliver(self, message: EmailMessage) -> None:
        smtp = self.settings["smtp"]
        host, port, security = smtp["host"], smtp["port"], smtp["security"]
        timeout = self.config["microservices"]["timeout"]
        if security == "plain" and smtp["password"] and not is_loopback(host):
            raise ServiceUnavailable("refusing to send the SMTP password unencrypted to "
                                     f"{host}: set microservices.email.smtp.security to "
                                     "ssl or starttls")
        try:
            if security == "ssl":
                client = smtplib.SMTP_SSL(host, port, timeout=timeout, context=self._tls())
            else:
                client = smtplib.SMTP(host, port, timeout=timeout)
            with client:
                if security == "starttls":
                    client.starttls(context=self._tls())
                if smtp["username"] and smtp["password"]:
                    client.login(smtp["username"], smtp["password"])
                client.send_message(message)
        except smtplib.SMTPAuthenticationError as e:
            raise UpstreamError(f"the SMTP server {host} refused the login: check "
                                "microservices.email.smtp.username and password") from e
        except smtplib.SMTPRecipientsRefused as e:
            raise UpstreamError(f"the SMTP server {host} refused the recipient") from e
        except smtplib.SMTPNotSupportedError as e:
            raise UpstreamError(f"the SMTP server {host} does not support {_what(e)}: "
                                "check microservices.email.smtp.security") from e
        except smtplib.SMTPException as e:
            raise UpstreamError(f"the SMTP server {host} refused the message ({_what(e)})") from e
        except ssl.SSLError as e:
            raise UpstreamError(f"TLS with the SMTP server {host}:{port} failed ({e.reason}): "
                                "check the port, microservices.email.smtp.security and ca_file") from e
        except (socket.timeout, TimeoutError) as e:
            raise UpstreamError(f"the SMTP server {host}:{port} did not answer within "
                                f"{timeout:g} s", status=504) from e
        except OSError as e:
            raise UpstreamError(f"cannot reach the SMTP server {host}:{port} "
                                f"({e.strerror or type(e).__name__})") from e

    def _tls(self) -> ssl.SSLContext:
        ca_file = self.settings["smtp"]["ca_file"] or None
        try:
            return ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as e:
            raise ServiceUnavailable(f"cannot read microservices.email.smtp.ca_file {ca_file}") from e

    def _count(self, uuid: str) -> None:
        now = time.monotonic()  # a wall-clock step back must not extend the hour
        with self._lock:
            sent = self._sent[uuid]
            while sent and sent[0] < now - 3600:
                sent.popleft()
            if len(sent) >= PER_HOUR:
                raise TooManyRequests(f"this device already sent {PER_HOUR} messages in the last hour")
            sent.append(now)


def _what(error: smtplib.SMTPException) -> str:
    """A short description of an SMTP error: its code and first line, nothing else."""
    code = getattr(error, "smtp_code", None)
    text = getattr(error, "smtp_error", b"")
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text or error)
    line = text.splitlines()[0][:120] if text else type(error).__name__
    return f"{code} {line}" if code else line
