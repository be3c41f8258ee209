"""Settings from a TOML file, fed to every command as click's ``default_map``.

Precedence is the one click gives every option: a value on the command line, then
its ``RRM_*`` environment variable, then the config file, then the built-in
default. The file is ``--config FILE``, else ``$RRM_CONFIG``, else ``./rrm.toml``
when it exists::

    db = "postgresql://rrm@db.agency.example/rrm"
    link_template = "https://cases.agency.example/{case_id}"

    [smtp]
    host = "mail.agency.example"
    port = 587
    security = "starttls"
    user = "rrm"
    password = "..."          # better: RRM_SMTP_PASSWORD
    from = "rrm@agency.example"

    [alerts]
    admin_address = "rrm-admin@agency.example"
    supervisor_address = "supervisors@agency.example"
    fallback_address = "cases@agency.example"
    digest_hour = 7

    [serve]                   # rrm serve
    host = "0.0.0.0"
    port = 8000
    workers = 4
    public_url = "https://rrm.agency.example"
    grants = ["ustr:USTR:US", "respondent:SE::MX"]
    session_secret = "..."    # better: RRM_SESSION_SECRET; shared by all workers

    [oidc]
    issuer = "https://login.agency.example/realms/rrm"
    audience = "rrm"
    jwks_url = "https://login.agency.example/realms/rrm/protocol/openid-connect/certs"
    roles_claim = "realm_access.roles"
    agency_claim = "agency"
    principal_claim = "preferred_username"
    role_map = ["rrm-ustr=ustr", "rrm-supervisor=supervisor"]
    client_id = "rrm-console"   # officers sign in to the console (code + PKCE)
    client_secret = "..."       # better: RRM_OIDC_CLIENT_SECRET
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from rrm.errors import InvalidInput, InvalidWorkflow
from rrm.workflow.loader import read_toml

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["DEFAULT_CONFIG", "KEYS", "default_map", "load_settings"]

DEFAULT_CONFIG: Final = Path("rrm.toml")

# Config key -> (the option's parameter name, the type the file must give).
KEYS: Final[Mapping[str, tuple[str, type]]] = {
    "db": ("db", str),
    "link_template": ("link_template", str),
    "smtp.host": ("smtp_host", str),
    "smtp.port": ("smtp_port", int),
    "smtp.security": ("smtp_security", str),
    "smtp.user": ("smtp_user", str),
    "smtp.password": ("smtp_password", str),
    "smtp.from": ("smtp_from", str),
    "alerts.admin_address": ("admin_address", str),
    "alerts.supervisor_address": ("supervisor_address", str),
    "alerts.fallback_address": ("fallback_address", str),
    "alerts.digest_hour": ("digest_hour", int),
    "serve.host": ("host", str),
    "serve.port": ("port", int),
    "serve.workers": ("workers", int),
    "serve.public_url": ("public_url", str),
    "serve.grants": ("grant", list),
    "serve.token_cache_seconds": ("token_cache_seconds", float),
    "serve.session_secret": ("session_secret", str),
    "oidc.issuer": ("oidc_issuer", str),
    "oidc.audience": ("oidc_audience", str),
    "oidc.jwks_url": ("oidc_jwks_url", str),
    "oidc.roles_claim": ("oidc_roles_claim", str),
    "oidc.agency_claim": ("oidc_agency_claim", str),
    "oidc.principal_claim": ("oidc_principal_claim", str),
    "oidc.role_map": ("oidc_role_map", list),
    "oidc.client_id": ("oidc_client_id", str),
    "oidc.client_secret": ("oidc_client_secret", str),
    "oidc.discovery_url": ("oidc_discovery_url", str),
}
_SECTIONS: Final = frozenset(k.partition(".")[0] for k in KEYS if "." in k)


def load_settings(path: Path | None) -> dict[str, Any]:
    """Return the settings of a config file by parameter name.

    Args:
        path: The file named by ``--config`` / ``RRM_CONFIG``; ``None`` reads
            ``./rrm.toml`` if it exists and gives no settings otherwise.

    Raises:
        InvalidInput: If the file is missing, not TOML, or has an unknown key or a
            value of the wrong type.
    """
    if path is None:
        if not DEFAULT_CONFIG.is_file():
            return {}
        path = DEFAULT_CONFIG
    if not path.is_file():
        raise InvalidInput("--config", f"no config file {str(path)!r}")
    try:
        data, _ = read_toml(path)
    except InvalidWorkflow as exc:
        raise InvalidInput("--config", exc.reason) from None
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in _SECTIONS and isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return dict(_checked(path, key, value) for key, value in flat.items())


def _checked(path: Path, key: str, value: Any) -> tuple[str, Any]:
    """Return one setting's parameter name and value, if known and well typed."""
    if key not in KEYS:
        known = ", ".join(KEYS)
        raise InvalidInput(f"{path}", f"unknown setting {key!r}; settings: {known}")
    kind = KEYS[key][1]
    if type(value) is not kind:
        raise InvalidInput(f"{path}", f"{key} must be {kind.__name__}")
    if isinstance(value, list) and not all(isinstance(item, str) for item in value):
        raise InvalidInput(f"{path}", f"{key} must be a list of text")
    return KEYS[key][0], value


def default_map(command: Any, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Return the ``default_map`` giving *settings* to every command taking them.

    *command* is the root command Typer built; groups nest their commands' maps.
    """
    commands = getattr(command, "commands", None)
    if isinstance(commands, dict):
        return {name: default_map(sub, settings) for name, sub in commands.items()}
    return {p.name: settings[p.name] for p in command.params if p.name in settings}
