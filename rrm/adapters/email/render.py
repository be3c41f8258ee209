"""Render alert views and daily digests into e-mail messages, in three languages.

The fixed wording of the e-mails lives in the catalogue below (English, Spanish and
French); case data (labels, explanations, citations) is shown as given. Dates are
written with a small, exact table of weekday and month names per language, so no
locale database is needed. Everything that may reach a mail header passes through
:func:`header_safe`.
"""

from __future__ import annotations

import string
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Final, final
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import jinja2

from rrm.adapters.email.ics import deadline_ics
from rrm.clock import SystemClock
from rrm.domain.alerts import (
    AlertKind,
    AlertMessage,
    AlertView,
    DamageView,
    DigestItem,
    DigestView,
)
from rrm.errors import InvalidInput

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "LANGUAGES",
    "JinjaAlertRenderer",
    "format_date",
    "format_time",
    "header_safe",
]

LANGUAGES: Final = ("en", "es", "fr")
SUBJECT_MAX: Final = 200
_LABEL_MAX: Final = 80
_REF_MAX: Final = 40
_NAME_MAX: Final = 80
_LINE_MAX: Final = 1000
_LINK_FIELDS: Final = frozenset({"case_id", "case_ref", "deadline_key", "alert_id"})
# Bidirectional overrides can make a line read differently from what it contains.
_BIDI: Final = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# The groups of a digest, in the order they are shown.
_GROUPS: Final = ("overdue", "due_today", "upcoming")

_WEEKDAYS: Final[Mapping[str, tuple[str, ...]]] = {
    "en": (
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ),
    "es": ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"),
    "fr": ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
}
_MONTHS: Final[Mapping[str, tuple[str, ...]]] = {
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
    "es": (
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "octubre",
        "noviembre",
        "diciembre",
    ),
    "fr": (
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ),
}

_EN: Final[Mapping[str, str]] = {
    "subject.reminder": "Reminder: {label} due {date}",
    "subject.due": "Due today: {label}",
    "subject.overdue": "OVERDUE: {label} was due {date}",
    "subject.dead_letter": "Undelivered alert: {label} due {date}",
    "subject.digest": "Deadline summary: {label} due {date}",
    "subject.unknown_step": "Step missing from the imported record: {label} "
    "(due {date})",
    "subject.late": "(sent late) ",
    "subject.nominal": " (nominal)",
    "head.reminder": "Reminder: this deadline is coming up.",
    "head.reminder_one": "Reminder: 1 day before the due date.",
    "head.reminder_many": "Reminder: {n} days before the due date.",
    "head.due": "This deadline is due today.",
    "head.overdue": "OVERDUE: the due date has passed and the deadline is not met.",
    "head.overdue_repeat": "OVERDUE (reminder {n}): the due date has passed and "
    "the deadline is not met.",
    "head.dead_letter": "An alert about this deadline could not be delivered to "
    "its recipient.",
    "head.digest": "Deadline summary.",
    "head.unknown_step": "The imported record of this case lacks this step: it "
    "shows neither that it was taken nor that its deadline lapsed. RRM has taken "
    "no lapse action.",
    "late": "This alert is late: it was owed earlier but could not be sent then "
    "(for example during an outage).",
    "colon": ":",
    "case": "Case",
    "workflow": "Procedure",
    "state": "Current stage",
    "parties": "Complainant / respondent",
    "facility": "Facility",
    "deadline": "Deadline",
    "actor": "Who acts",
    "due": "Due",
    "due.phrase": "{date}, until the end of the day ({zone})",
    "local": "In your time zone",
    "local.before": "before {date}, {time} ({zone})",
    "local.until": "until the end of {date} ({zone})",
    "explanation": "What this deadline is",
    "citation": "Legal basis",
    "evidence": "Evidence",
    "evidence.V": "Verified in a primary or official text (V).",
    "evidence.S": "Secondary source, not checked against the official text (S).",
    "evidence.R": "NOMINAL (R): recalled from the treaty text, NOT verified.",
    "evidence.other": "Not stated ({code}).",
    "nominal": "NOMINAL DEADLINE: this period is recalled from the treaty text and "
    "has not been verified. Check the official text before relying on it; do not "
    "treat this date as settled law.",
    "action": "What you are expected to do",
    "link": "Open the case",
    "footer": "Sent automatically by the RRM case engine. Do not reply to this "
    "message.",
    "ics.alarm": "Deadline tomorrow: {label}",
    "ics.nominal": "NOMINAL: recalled, not verified; check the official text.",
    "digest.subject": "Deadlines for {date}: {summary}",
    "digest.count.overdue": "{n} overdue",
    "digest.count.due_today": "{n} due today",
    "digest.count.upcoming": "{n} upcoming",
    "digest.empty": "no open deadlines within {n} days",
    "digest.empty_one": "no open deadlines within 1 day",
    "digest.head": "Your open deadlines on {date}",
    "digest.group.overdue": "Overdue ({count})",
    "digest.group.due_today": "Due today ({count})",
    "digest.group.upcoming": "Upcoming within {n} days ({count})",
    "digest.group.upcoming_one": "Upcoming within 1 day ({count})",
    "digest.empty.body": "You have no open deadlines within {n} days.",
    "digest.empty.body_one": "You have no open deadlines within 1 day.",
}

_ES: Final[Mapping[str, str]] = {
    "subject.reminder": "Recordatorio: {label} vence el {date}",
    "subject.due": "Vence hoy: {label}",
    "subject.overdue": "VENCIDO: {label} venció el {date}",
    "subject.dead_letter": "Alerta no entregada: {label} vence el {date}",
    "subject.digest": "Resumen de plazos: {label} vence el {date}",
    "subject.unknown_step": "Paso ausente del expediente importado: {label} "
    "(vencía el {date})",
    "subject.late": "(envío tardío) ",
    "subject.nominal": " (nominal)",
    "head.reminder": "Recordatorio: este plazo se acerca.",
    "head.reminder_one": "Recordatorio: falta 1 día para el vencimiento.",
    "head.reminder_many": "Recordatorio: faltan {n} días para el vencimiento.",
    "head.due": "Este plazo vence hoy.",
    "head.overdue": "VENCIDO: la fecha límite pasó y el plazo no se ha cumplido.",
    "head.overdue_repeat": "VENCIDO (aviso {n}): la fecha límite pasó y el plazo "
    "no se ha cumplido.",
    "head.dead_letter": "No se pudo entregar a su destinatario una alerta sobre "
    "este plazo.",
    "head.digest": "Resumen de plazos.",
    "head.unknown_step": "El expediente importado de este caso no registra este "
    "paso: no muestra que se haya dado ni que su plazo haya vencido. RRM no ha "
    "tomado ninguna medida por vencimiento.",
    "late": "Esta alerta llega con retraso: debía enviarse antes, pero no fue "
    "posible (por ejemplo, durante una interrupción del servicio).",
    "colon": ":",
    "case": "Caso",
    "workflow": "Procedimiento",
    "state": "Etapa actual",
    "parties": "Parte reclamante / Parte demandada",
    "facility": "Instalación",
    "deadline": "Plazo",
    "actor": "Quién actúa",
    "due": "Vencimiento",
    "due.phrase": "{date}, hasta el final del día ({zone})",
    "local": "En su zona horaria",
    "local.before": "antes del {date}, {time} ({zone})",
    "local.until": "hasta el final del {date} ({zone})",
    "explanation": "En qué consiste este plazo",
    "citation": "Fundamento jurídico",
    "evidence": "Evidencia",
    "evidence.V": "Verificado en un texto primario u oficial (V).",
    "evidence.S": "Fuente secundaria, no cotejada con el texto oficial (S).",
    "evidence.R": "NOMINAL (R): recordado del texto del tratado, NO verificado.",
    "evidence.other": "No indicada ({code}).",
    "nominal": "PLAZO NOMINAL: este plazo se recuerda del texto del tratado y no ha "
    "sido verificado. Consulte el texto oficial antes de basarse en él; no lo trate "
    "como derecho establecido.",
    "action": "Lo que se espera de usted",
    "link": "Abrir el caso",
    "footer": "Enviado automáticamente por el sistema de casos RRM. No responda a "
    "este mensaje.",
    "ics.alarm": "El plazo vence mañana: {label}",
    "ics.nominal": "NOMINAL: recordado, no verificado; consulte el texto oficial.",
    "digest.subject": "Plazos del {date}: {summary}",
    "digest.count.overdue": "{n} vencidos",
    "digest.count.overdue_one": "1 vencido",
    "digest.count.due_today": "{n} vencen hoy",
    "digest.count.due_today_one": "1 vence hoy",
    "digest.count.upcoming": "{n} por vencer",
    "digest.empty": "ningún plazo abierto en los próximos {n} días",
    "digest.empty_one": "ningún plazo abierto hasta mañana",
    "digest.head": "Sus plazos abiertos al {date}",
    "digest.group.overdue": "Vencidos ({count})",
    "digest.group.due_today": "Vencen hoy ({count})",
    "digest.group.upcoming": "Por vencer en los próximos {n} días ({count})",
    "digest.group.upcoming_one": "Por vencer hasta mañana ({count})",
    "digest.empty.body": "No tiene plazos abiertos en los próximos {n} días.",
    "digest.empty.body_one": "No tiene plazos abiertos hasta mañana.",
}

_FR: Final[Mapping[str, str]] = {
    "subject.reminder": "Rappel : {label}, échéance le {date}",
    "subject.due": "Échéance aujourd'hui : {label}",
    "subject.overdue": "EN RETARD : {label}, échéance dépassée ({date})",
    "subject.dead_letter": "Alerte non remise : {label}, échéance le {date}",
    "subject.digest": "Récapitulatif : {label}, échéance le {date}",
    "subject.unknown_step": "Étape absente du dossier importé : {label} "
    "(échéance le {date})",
    "subject.late": "(envoi tardif) ",
    "subject.nominal": " (nominale)",
    "head.reminder": "Rappel : cette échéance approche.",
    "head.reminder_one": "Rappel : 1 jour avant l'échéance.",
    "head.reminder_many": "Rappel : {n} jours avant l'échéance.",
    "head.due": "Cette échéance tombe aujourd'hui.",
    "head.overdue": "EN RETARD : l'échéance est dépassée et le délai n'est pas "
    "respecté.",
    "head.overdue_repeat": "EN RETARD (relance {n}) : l'échéance est dépassée et "
    "le délai n'est pas respecté.",
    "head.dead_letter": "Une alerte concernant cette échéance n'a pas pu être "
    "remise à son destinataire.",
    "head.digest": "Récapitulatif des échéances.",
    "head.unknown_step": "Le dossier importé de cette affaire ne mentionne pas "
    "cette étape : il ne montre ni qu'elle a eu lieu ni que son délai a expiré. RRM "
    "n'a pris aucune mesure d'expiration.",
    "late": "Cette alerte arrive en retard : elle aurait dû être envoyée plus tôt, "
    "mais l'envoi a été impossible (par exemple pendant une panne).",
    "colon": "\u00a0:",
    "case": "Dossier",
    "workflow": "Procédure",
    "state": "Étape en cours",
    "parties": "Partie plaignante / Partie visée",
    "facility": "Installation",
    "deadline": "Délai",
    "actor": "Qui doit agir",
    "due": "Échéance",
    "due.phrase": "{date}, jusqu'à la fin de la journée ({zone})",
    "local": "Dans votre fuseau horaire",
    "local.before": "avant le {date}, {time} ({zone})",
    "local.until": "jusqu'à la fin du {date} ({zone})",
    "explanation": "En quoi consiste ce délai",
    "citation": "Fondement juridique",
    "evidence": "Source",
    "evidence.V": "Vérifié dans un texte primaire ou officiel (V).",
    "evidence.S": "Source secondaire, non vérifiée par rapport au texte officiel (S).",
    "evidence.R": "NOMINAL (R) : tiré de mémoire du texte du traité, NON vérifié.",
    "evidence.other": "Non précisée ({code}).",
    "nominal": "DÉLAI NOMINAL : ce délai est tiré de mémoire du texte du traité et "
    "n'a pas été vérifié. Consultez le texte officiel avant de vous y fier ; ne le "
    "considérez pas comme du droit établi.",
    "action": "Ce que l'on attend de vous",
    "link": "Ouvrir le dossier",
    "footer": "Message envoyé automatiquement par le système de dossiers RRM. Merci "
    "de ne pas y répondre.",
    "ics.alarm": "Échéance demain : {label}",
    "ics.nominal": "NOMINAL : tiré de mémoire, non vérifié ; consultez le texte "
    "officiel.",
    "digest.subject": "Échéances du {date} : {summary}",
    "digest.count.overdue": "{n} en retard",
    "digest.count.due_today": "{n} pour aujourd'hui",
    "digest.count.upcoming": "{n} à venir",
    "digest.empty": "aucune échéance ouverte dans les {n} prochains jours",
    "digest.empty_one": "aucune échéance ouverte d'ici demain",
    "digest.head": "Vos échéances ouvertes au {date}",
    "digest.group.overdue": "En retard ({count})",
    "digest.group.due_today": "Échéance aujourd'hui ({count})",
    "digest.group.upcoming": "À venir dans les {n} prochains jours ({count})",
    "digest.group.upcoming_one": "À venir d'ici demain ({count})",
    "digest.empty.body": "Vous n'avez aucune échéance ouverte dans les {n} "
    "prochains jours.",
    "digest.empty.body_one": "Vous n'avez aucune échéance ouverte d'ici demain.",
}

CATALOGUE: Final[Mapping[str, Mapping[str, str]]] = {"en": _EN, "es": _ES, "fr": _FR}


def header_safe(value: str, limit: int = SUBJECT_MAX) -> str:
    """Return *value* fit for a mail header: one line, no control characters.

    Control and format characters, line and paragraph separators become spaces,
    runs of whitespace collapse to one space, and the result is cut to *limit*
    characters (ending with an ellipsis when cut).

    Args:
        value: Any text, possibly from case data.
        limit: The longest result allowed, in characters.
    """
    kept = (" " if _is_unsafe(ch) or ch.isspace() else ch for ch in value)
    text = " ".join("".join(kept).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _is_unsafe(ch: str) -> bool:
    return unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"}


def body_safe(value: str) -> str:
    """Return *value* fit for a message body: newlines kept, other controls dropped."""
    text = value.replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\u2028", "\n").replace("\u2029", "\n")
    return "".join(
        ch
        for ch in text
        if ch in "\n\t" or (unicodedata.category(ch) != "Cc" and ch not in _BIDI)
    )


def format_date(day: date, language: str) -> str:
    """Write *day* in full, with its weekday, as the language writes it.

    Args:
        day: The date.
        language: ``"en"``, ``"es"`` or ``"fr"``.

    Returns:
        E.g. ``Thursday, January 16, 2025``, ``jueves, 16 de enero de 2025`` or
        ``jeudi 16 janvier 2025`` (``1er`` for the first of a month in French).
    """
    weekday = _WEEKDAYS[language][day.weekday()]
    month = _MONTHS[language][day.month - 1]
    if language == "es":
        return f"{weekday}, {day.day} de {month} de {day.year}"
    if language == "fr":
        number = "1er" if day.day == 1 else str(day.day)
        return f"{weekday} {number} {month} {day.year}"
    return f"{weekday}, {month} {day.day}, {day.year}"


def format_time(moment: time, language: str) -> str:
    """Write a time of day: ``1:00 AM`` in English, ``1:00`` / ``01:00`` otherwise."""
    if language == "en":
        hour = moment.hour % 12 or 12
        return f"{hour}:{moment.minute:02d} {'AM' if moment.hour < 12 else 'PM'}"  # noqa: PLR2004
    if language == "es":
        return f"{moment.hour}:{moment.minute:02d}"
    return f"{moment.hour:02d}:{moment.minute:02d}"


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError):
        return None


def _zone_label(moment: datetime) -> str:
    """Name the zone of an aware local datetime: ``America/Toronto, UTC-05:00``."""
    offset = moment.utcoffset() or timedelta()
    sign = "-" if offset < timedelta() else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{moment.tzinfo}, UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _check_link_template(template: str) -> None:
    if not template:
        return
    if urlsplit(template).scheme not in {"http", "https"}:
        raise InvalidInput("link_template", "must be an http:// or https:// URL")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise InvalidInput("link_template", f"is not a format string: {exc}") from None
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in _LINK_FIELDS or spec or conversion:
            raise InvalidInput(
                "link_template",
                f"may only use {{case_id}}, {{case_ref}}, {{deadline_key}} and "
                f"{{alert_id}}, not {{{field}}}",
            )


@dataclass(frozen=True, slots=True)
class _Due:
    """The due date as shown: in the deadline's zone, and the recipient's if other."""

    deadline: str
    local: str


def _due_lines(
    due_date: date,
    due_at: datetime,
    deadline_timezone: str,
    timezone: str,
    *,
    lang: str,
    t: Mapping[str, str],
) -> _Due:
    deadline_zone = _zone(deadline_timezone) or ZoneInfo("UTC")
    end = due_at.astimezone(deadline_zone)
    zone = _zone_label(end - timedelta(microseconds=1))
    shown = t["due.phrase"].format(date=format_date(due_date, lang), zone=zone)
    mine = _zone(timezone)
    if mine is None or str(mine) == str(deadline_zone):
        return _Due(deadline=shown, local="")
    local = due_at.astimezone(mine)
    if local.time() == time():
        last = local - timedelta(microseconds=1)
        text = t["local.until"].format(
            date=format_date(last.date(), lang), zone=_zone_label(last)
        )
    else:
        text = t["local.before"].format(
            date=format_date(local.date(), lang),
            time=format_time(local.time(), lang),
            zone=_zone_label(local),
        )
    return _Due(deadline=shown, local=text)


def _headline(view: AlertView, t: Mapping[str, str]) -> str:
    if view.kind is AlertKind.REMINDER:
        if view.days_before is None:
            return t["head.reminder"]
        if view.days_before == 1:
            return t["head.reminder_one"]
        return t["head.reminder_many"].format(n=view.days_before)
    if view.kind is AlertKind.OVERDUE and view.repeat > 1:
        return t["head.overdue_repeat"].format(n=view.repeat)
    return t[f"head.{view.kind.value}"]


def _is_nominal(view: AlertView) -> bool:
    return view.nominal or view.evidence.strip().upper() == "R"


def _evidence_text(view: AlertView, t: Mapping[str, str]) -> str:
    code = view.evidence.strip().upper()
    if _is_nominal(view):
        return t["evidence.R"]
    if code in {"V", "S"}:
        return t[f"evidence.{code}"]
    return t["evidence.other"].format(code=header_safe(view.evidence, 10) or "?")


def _subject(view: AlertView, t: Mapping[str, str]) -> str:
    label = header_safe(view.deadline_label, _LABEL_MAX)
    core = t[f"subject.{view.kind.value}"].format(
        label=label, date=view.due_date.isoformat()
    )
    if view.late:
        core = t["subject.late"] + core
    if _is_nominal(view):
        core += t["subject.nominal"]
    ref = header_safe(view.case_ref, _REF_MAX)
    return header_safe(f"[RRM] {core} — {ref}", SUBJECT_MAX)


def _counted(t: Mapping[str, str], key: str, n: int) -> str:
    """Return the wording for *n* things: ``key_one`` when n is 1 and it exists."""
    return t.get(f"{key}_one", t[key]) if n == 1 else t[key]


def _group_of(item: DigestItem, day: date) -> str:
    """Return the item's group; an unknown status is placed by its due date."""
    if item.status in _GROUPS:
        return item.status
    if item.due_date < day:
        return "overdue"
    return "due_today" if item.due_date == day else "upcoming"


def _grouped(view: DigestView) -> dict[str, list[DigestItem]]:
    groups: dict[str, list[DigestItem]] = {g: [] for g in _GROUPS}
    for item in sorted(view.items, key=lambda i: (i.due_at, i.case_ref, i.case_id)):
        groups[_group_of(item, view.day)].append(item)
    return groups


def _digest_subject(
    view: DigestView,
    groups: Mapping[str, list[DigestItem]],
    lang: str,
    t: Mapping[str, str],
) -> str:
    if view.items:
        summary = ", ".join(
            _counted(t, f"digest.count.{g}", len(groups[g])).format(n=len(groups[g]))
            for g in _GROUPS
        )
    else:
        n = view.horizon_days
        summary = _counted(t, "digest.empty", n).format(n=n)
    core = t["digest.subject"].format(date=format_date(view.day, lang), summary=summary)
    return header_safe(f"[RRM] {core}", SUBJECT_MAX)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class _DigestLine:
    """One digest item as shown: every field already made safe to display."""

    case_ref: str
    facility_name: str
    state_label: str
    deadline_label: str
    due: str
    due_local: str
    explanation: str
    nominal: bool
    link: str


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class _DigestGroup:
    """A heading and the items under it."""

    key: str
    heading: str
    lines: tuple[_DigestLine, ...]


@final
class JinjaAlertRenderer:
    """Render alert views with the Jinja2 templates shipped in this package.

    Args:
        link_template: A URL with the fields ``{case_id}``, ``{case_ref}``,
            ``{deadline_key}`` and ``{alert_id}``, filled with URL-quoted values;
            empty means the view's own ``link`` (if any) is used.
        default_language: Used when the recipient's language is not one of
            ``en``, ``es``, ``fr``.
        now: Source of the iCalendar ``DTSTAMP``; defaults to the system clock.

    Raises:
        InvalidInput: The link template or the default language is not usable.
    """

    def __init__(
        self,
        link_template: str = "",
        default_language: str = "en",
        *,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        _check_link_template(link_template)
        if default_language not in CATALOGUE:
            raise InvalidInput("default_language", f"must be one of {LANGUAGES}")
        self._link_template = link_template
        self._default_language = default_language
        self._now = now or SystemClock().now
        self._env = jinja2.Environment(
            loader=jinja2.PackageLoader("rrm.adapters.email", "templates"),
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html",), default_for_string=True
            ),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )

    def language(self, requested: str) -> str:
        """Return the language used for a recipient who asked for *requested*."""
        lang = requested.strip().lower().replace("_", "-").split("-")[0]
        return lang if lang in CATALOGUE else self._default_language

    def link(self, view: AlertView) -> str:
        """Return the link to the case, or ``""`` when there is none."""
        if not self._link_template:
            return view.link if urlsplit(view.link).scheme in {"http", "https"} else ""
        return self._fill(view.case_id, view.case_ref, view.deadline_key, view.alert_id)

    def digest_link(self, item: DigestItem) -> str:
        """Return the link to a digest item's case, or ``""`` without a template.

        ``{alert_id}`` is empty (a digest is about many deadlines); ``{deadline_key}``
        is the item's deadline.
        """
        if not self._link_template:
            return ""
        return self._fill(item.case_id, item.case_ref, item.deadline_key, "")

    def _fill(
        self, case_id: str, case_ref: str, deadline_key: str, alert_id: str
    ) -> str:
        values = {
            "case_id": case_id,
            "case_ref": case_ref,
            "deadline_key": deadline_key,
            "alert_id": alert_id,
        }
        return self._link_template.format(
            **{k: quote(v, safe="") for k, v in values.items()}
        )

    def render(self, view: AlertView) -> AlertMessage:
        """Return the e-mail for one alert: subject, text, HTML and calendar file."""
        lang = self.language(view.language)
        t = CATALOGUE[lang]
        context = self._context(view, lang, t)
        return AlertMessage(
            alert_id=view.alert_id,
            message_id=view.message_id,
            to_address=view.recipient_email,
            to_name=header_safe(view.recipient_name, _NAME_MAX),
            subject=_subject(view, t),
            text=self._env.get_template("alert.txt").render(context),
            html=self._env.get_template("alert.html").render(context),
            # A step the record lacks is past due: no calendar entry to add.
            ics=None
            if view.kind is AlertKind.UNKNOWN_STEP
            else self._ics(view, t, str(context["link"])),
            language=lang,
            view=view,
        )

    def render_digest(self, view: DigestView) -> AlertMessage:
        """Return an officer's daily digest: open deadlines grouped by urgency.

        The digest is written in the officer's language and shows each due date in
        the deadline's zone (and the officer's, when it differs). It names no one
        but the recipient, whose address is the only personal data it carries, and
        has no calendar file.
        """
        lang = self.language(view.language)
        t = CATALOGUE[lang]
        groups = _grouped(view)
        subject = _digest_subject(view, groups, lang, t)
        n = view.horizon_days
        shown = [
            _DigestGroup(
                key=g,
                heading=_counted(t, f"digest.group.{g}", n).format(
                    n=n, count=len(items)
                ),
                lines=tuple(
                    self._digest_line(i, view.timezone, lang, t) for i in items
                ),
            )
            for g, items in groups.items()
            if items
        ]
        context: dict[str, object] = {
            "lang": lang,
            "t": t,
            "subject": subject,
            "headline": t["digest.head"].format(date=format_date(view.day, lang)),
            "groups": shown,
            "empty": _counted(t, "digest.empty.body", n).format(n=n),
        }
        return AlertMessage(
            alert_id=view.alert_id,
            message_id=view.message_id,
            to_address=view.recipient_email,
            to_name="",
            subject=subject,
            text=self._env.get_template("digest.txt").render(context),
            html=self._env.get_template("digest.html").render(context),
            ics=None,
            language=lang,
            view=view,
        )

    def render_damage(self, view: DamageView) -> AlertMessage:
        """Return the administrator's notice that a case's rows are damaged.

        In English, as the dead-letter notices: it goes to the administrator,
        not to an officer. It lists what the verification found and how to see
        it again; it carries no calendar file.
        """
        subject = header_safe(
            f"[RRM] Case damaged: {view.case_ref} does not match its history",
            _LINE_MAX,
        )
        context: dict[str, object] = {
            "subject": subject,
            "case_ref": view.case_ref,
            "case_id": view.case_id,
            "found_at": view.found_at.isoformat(timespec="seconds"),
            "problems": view.problems,
        }
        return AlertMessage(
            alert_id=view.alert_id,
            message_id=view.message_id,
            to_address=view.recipient_email,
            to_name="",
            subject=subject,
            text=self._env.get_template("damage.txt").render(context),
            html=self._env.get_template("damage.html").render(context),
            ics=None,
            language="en",
            view=view,
        )

    def _digest_line(
        self, item: DigestItem, timezone: str, lang: str, t: Mapping[str, str]
    ) -> _DigestLine:
        due = _due_lines(
            item.due_date, item.due_at, item.deadline_timezone, timezone, lang=lang, t=t
        )
        return _DigestLine(
            case_ref=header_safe(item.case_ref, _LINE_MAX),
            facility_name=header_safe(item.facility_name, _LINE_MAX),
            state_label=header_safe(item.state_label, _LINE_MAX),
            deadline_label=header_safe(item.deadline_label, _LINE_MAX),
            due=due.deadline,
            due_local=due.local,
            explanation=body_safe(item.explanation).strip(),
            nominal=item.nominal,
            link=self.digest_link(item),
        )

    def _context(
        self, view: AlertView, lang: str, t: Mapping[str, str]
    ) -> dict[str, object]:
        due = _due_lines(
            view.due_date,
            view.due_at,
            view.deadline_timezone,
            view.timezone,
            lang=lang,
            t=t,
        )
        place = ", ".join(
            p
            for p in (view.facility_city, view.facility_region, view.facility_country)
            if p.strip()
        )
        lines = {
            "case_ref": view.case_ref,
            "workflow_title": view.workflow_title,
            "annex": view.annex,
            "state_label": view.state_label,
            "complainant": view.complainant,
            "respondent": view.respondent,
            "facility_name": view.facility_name,
            "facility_place": place,
            "deadline_label": view.deadline_label,
            "deadline_actor": view.deadline_actor,
            "citation": view.citation,
        }
        paragraphs = {
            "explanation": view.explanation,
            "expected_action": view.expected_action,
        }
        context: dict[str, object] = {
            k: header_safe(v, _LINE_MAX) for k, v in lines.items()
        }
        context.update({k: body_safe(v) for k, v in paragraphs.items()})
        context.update(
            lang=lang,
            t=t,
            headline=_headline(view, t),
            late=view.late,
            due=due.deadline,
            due_local=due.local,
            evidence=_evidence_text(view, t),
            nominal=_is_nominal(view),
            link=self.link(view),
        )
        return context

    def _ics(self, view: AlertView, t: Mapping[str, str], link: str) -> bytes:
        label = header_safe(view.deadline_label, _LABEL_MAX)
        summary = f"{label} — {header_safe(view.case_ref, _REF_MAX)}"
        parts = [body_safe(view.explanation), header_safe(view.citation, _LINE_MAX)]
        if _is_nominal(view):
            summary += t["subject.nominal"]
            parts.append(t["ics.nominal"])
        return deadline_ics(
            deadline_id=view.deadline_id,
            sequence=view.calendar_sequence,
            day=view.due_date,
            summary=header_safe(summary, SUBJECT_MAX),
            description="\n\n".join(p for p in parts if p.strip()),
            alarm_text=header_safe(t["ics.alarm"].format(label=label), SUBJECT_MAX),
            url=link,
            stamp=self._now().astimezone(UTC),
        )
