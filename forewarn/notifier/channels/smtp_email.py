"""Email through any SMTP relay, with the standard library's ``smtplib``."""

from __future__ import annotations

import smtplib
import ssl
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from typing import Literal

from forewarn.notifier.channels import DeliveryError, Medium, Outbound, Receipt
from forewarn.notifier.privacy import mask_email, scrub

Security = Literal["starttls", "tls", "none"]


class SmtpEmail:
    """Sends each message in its own SMTP session (``multipart/alternative``: text + HTML).

    One connection per message keeps the channel stateless across sender threads; relays
    that rate-limit connections answer 421/451, which is transient. The reply code decides
    the verdict as RFC 5321 defines it: 4xx try again later, 5xx never.
    """

    provider = "smtp"
    medium: Medium = "email"

    def __init__(
        self,
        host: str,
        port: int,
        from_email: str,
        *,
        from_name: str = "forewarn",
        security: Security = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._from = from_email
        self._from_header = formataddr((from_name, from_email))
        self._security = security
        self._username = username
        self._password = password
        self._timeout = timeout
        self._ssl = ssl_context or ssl.create_default_context()

    def send(self, message: Outbound) -> Receipt:
        mail = EmailMessage()
        mail["From"] = self._from_header
        mail["To"] = (
            Address(display_name=message.to_name, addr_spec=message.to)
            if message.to_name
            else message.to
        )
        mail["Subject"] = message.subject or ""
        message_id = make_msgid(domain=self._from.rpartition("@")[2])
        mail["Message-ID"] = message_id
        mail["X-Forewarn-Notification"] = str(message.notification_id)
        mail.set_content(message.body)
        if message.html is not None:
            mail.add_alternative(message.html, subtype="html")
        try:
            with self._connect() as smtp:
                if self._username is not None and self._password is not None:
                    smtp.login(self._username, self._password)
                refused = smtp.send_message(mail, from_addr=self._from, to_addrs=[message.to])
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            raise self._rejected(code, reply, message.to) from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(
                f"smtp login refused ({exc.smtp_code}); check SMTP_PASSWORD", permanent=True
            ) from exc
        except smtplib.SMTPResponseException as exc:
            raise self._rejected(exc.smtp_code, exc.smtp_error, message.to) from exc
        except (smtplib.SMTPException, OSError) as exc:
            # Disconnected, refused connection, timeout, TLS failure: the relay may be back.
            raise DeliveryError(
                f"smtp relay unreachable ({type(exc).__name__}) sending to "
                f"{mask_email(message.to)}",
                permanent=False,
            ) from exc
        if refused:
            code, reply = next(iter(refused.values()))
            raise self._rejected(code, reply, message.to)
        return Receipt(provider=self.provider, provider_message_id=message_id)

    def _connect(self) -> smtplib.SMTP:
        if self._security == "tls":
            return smtplib.SMTP_SSL(
                self._host, self._port, timeout=self._timeout, context=self._ssl
            )
        smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout)
        if self._security == "starttls":
            try:
                smtp.starttls(context=self._ssl)
            except BaseException:
                smtp.close()
                raise
        return smtp

    def _rejected(self, code: int, reply: bytes | str, to: str) -> DeliveryError:
        text = reply.decode(errors="replace") if isinstance(reply, bytes) else reply
        return DeliveryError(
            f"smtp relay refused the email to {mask_email(to)}: {code} {scrub(text)}",
            permanent=500 <= code < 600,
            code=str(code),
        )
