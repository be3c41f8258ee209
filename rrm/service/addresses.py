"""E-mail addresses checked where they enter (issue #13, item 1).

An officer's address is checked when the officer is assigned (opening a case,
``assign``, an import), not when the first alert bounces weeks later: an address
such as ``not-an-address``, ``a@b, c@d`` or one holding a line break would make
every alert to it a dead letter. The check is ``email-validator``'s syntax check,
without DNS (the machine may have no network, and an agency's internal domain need
not resolve from it). An empty address is allowed: the officer is then no
recipient, and the alert goes to the configured fallback address instead.
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from rrm.errors import InvalidInput

__all__ = ["check_address"]


def check_address(field: str, value: str) -> str:
    """Return *value* as a normalised address, or ``""`` when empty.

    Raises:
        InvalidInput: If *value* is not one well-formed address.
    """
    if value == "":
        return ""
    try:
        checked = validate_email(
            value,
            check_deliverability=False,
            # Agencies' test and internal domains (".example", ".internal") are
            # real destinations for their own mail servers.
            test_environment=True,
        )
    except EmailNotValidError as exc:
        raise InvalidInput(
            field, f"{value!r} is not one e-mail address ({exc}); give one address"
        ) from None
    return checked.normalized
