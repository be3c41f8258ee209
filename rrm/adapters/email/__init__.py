"""E-mail delivery of deadline alerts: rendering (Jinja2, iCalendar) and SMTP."""

from rrm.adapters.email.render import JinjaAlertRenderer
from rrm.adapters.email.smtp import SmtpNotifier, SmtpSettings

__all__ = ["JinjaAlertRenderer", "SmtpNotifier", "SmtpSettings"]
