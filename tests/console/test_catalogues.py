"""The console's Spanish and French catalogues cover every text the console shows.

The texts are extracted here from the console's templates and Python the way
``pybabel extract`` does it (same ``babel.cfg``), so a new text that nobody
translated fails with its msgid named. Every translation keeps its msgid's
``{placeholders}``, the committed ``messages.pot`` matches the extraction, and
the compiled catalogues are the ones the console renders with.

To bring the catalogues up to date after changing the console's texts::

    .venv/bin/pybabel extract -F rrm/server/console/locale/babel.cfg -k _ \\
        -o rrm/server/console/locale/messages.pot --no-location --sort-output \\
        --project=usmca-rrm rrm/server/console
    .venv/bin/pybabel update -i rrm/server/console/locale/messages.pot \\
        -d rrm/server/console/locale --no-fuzzy-matching

then translate the new entries of ``es`` and ``fr``.
"""

from __future__ import annotations

import string
from functools import cache
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from jinja2 import Environment

from rrm.server.console.i18n import translations

REPO = Path(__file__).resolve().parent.parent.parent
CONSOLE = REPO / "rrm" / "server" / "console"
LOCALE = CONSOLE / "locale"
LANGS = ("es", "fr")
UPDATE = (
    "run pybabel extract and pybabel update (see this module's docstring), "
    "then translate"
)


@cache
def extracted() -> Catalog:
    """The console's texts, extracted as ``pybabel extract -F babel.cfg -k _`` does."""
    with (LOCALE / "babel.cfg").open(encoding="utf-8") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg, str(LOCALE / "babel.cfg"))
    catalog = Catalog(project="usmca-rrm")
    for filename, lineno, message, comments, context in extract_from_dir(
        CONSOLE,
        method_map,
        options_map,
        keywords={**DEFAULT_KEYWORDS, "_": None},
    ):
        catalog.add(
            message,
            None,
            [(filename, lineno)],
            auto_comments=comments,
            context=context,
        )
    return catalog


@cache
def catalogue(lang: str) -> Catalog:
    """The committed catalogue of *lang* (``messages`` for the template)."""
    path = (
        LOCALE / "messages.pot"
        if lang == "messages"
        else LOCALE / lang / "LC_MESSAGES" / "messages.po"
    )
    with path.open("rb") as f:
        return read_po(
            f, locale=None if lang == "messages" else lang, abort_invalid=True
        )


def keys(catalog: Catalog) -> set[tuple[str, str | None]]:
    """The (msgid, context) of every entry of *catalog* but its header."""
    return {
        (m.id[0] if isinstance(m.id, tuple) else m.id, m.context)
        for m in catalog
        if m.id
    }


def forms(text: str | tuple[str, ...] | None) -> tuple[str, ...]:
    """A message's text, or its plural forms, as a tuple."""
    if text is None:
        return ()
    return text if isinstance(text, tuple) else (text,)


def placeholders(text: str) -> set[str]:
    """The ``{fields}`` of a ``str.format`` text (``{{`` and ``}}`` are literal)."""
    return {
        "{" + field + "}"
        for _, field, _, _ in string.Formatter().parse(text)
        if field is not None
    }


def label(message: Message) -> str:
    """A msgid fit for a failure message."""
    return repr(forms(message.id)[0])


def test_the_extraction_finds_the_console_texts() -> None:
    ids = {msgid for msgid, _ in keys(extracted())}
    assert {"My work", "Sign in", "Sign out", "Cases", "Change", "Language"} <= ids
    assert len(ids) > 100


@pytest.mark.parametrize("lang", LANGS)
def test_every_console_text_is_translated(lang: str) -> None:
    po = catalogue(lang)
    missing, empty, fuzzy = [], [], []
    for message in extracted():
        if not message.id:
            continue
        found = po.get(message.id, message.context)
        if found is None:
            missing.append(label(message))
        elif not all(s.strip() for s in forms(found.string)):
            empty.append(label(message))
        elif found.fuzzy:
            fuzzy.append(label(message))
    problems = [
        f"{what} in {lang}/LC_MESSAGES/messages.po:\n  " + "\n  ".join(ids)
        for what, ids in (
            ("not in the catalogue", missing),
            ("not translated", empty),
            ("marked fuzzy (never shown)", fuzzy),
        )
        if ids
    ]
    assert not problems, "\n".join(problems) + f"\n({UPDATE})"


@pytest.mark.parametrize("lang", LANGS)
def test_no_entry_of_the_catalogue_is_fuzzy_or_empty(lang: str) -> None:
    bad = [
        label(m)
        for m in catalogue(lang)
        if m.id and (m.fuzzy or not all(s.strip() for s in forms(m.string)))
    ]
    assert not bad, f"fuzzy or empty entries in {lang}: " + ", ".join(bad)


@pytest.mark.parametrize("lang", LANGS)
def test_translations_keep_the_placeholders(lang: str) -> None:
    wrong = []
    for message in catalogue(lang):
        if not message.id or not message.string:
            continue
        ids = forms(message.id)
        for i, text in enumerate(forms(message.string)):
            source = ids[min(i, len(ids) - 1)]
            try:
                got = placeholders(text)
            except ValueError as exc:
                wrong.append(f"{label(message)} -> {text!r}: {exc}")
                continue
            expected = placeholders(source)
            # A plural's singular may spell the number out; its plural forms may not.
            if got != expected and not (len(ids) > 1 and got < expected):
                wrong.append(
                    f"{label(message)} has {sorted(expected)}, "
                    f"{text!r} has {sorted(got)}"
                )
    assert not wrong, f"placeholders changed in {lang}:\n  " + "\n  ".join(wrong)


@pytest.mark.parametrize("lang", LANGS)
def test_nominal_stays_recognisable(lang: str) -> None:
    po = catalogue(lang)
    lost = [
        label(m)
        for m in po
        if m.id
        and "NOMINAL" in forms(m.id)[0]
        and not all("NOMINAL" in s for s in forms(m.string))
    ]
    assert not lost, f"the NOMINAL mark is lost in {lang}: " + ", ".join(lost)


def test_the_committed_template_is_up_to_date() -> None:
    committed = keys(catalogue("messages"))
    current = keys(extracted())
    new = sorted(repr(msgid) for msgid, _ in current - committed)
    gone = sorted(repr(msgid) for msgid, _ in committed - current)
    assert not new and not gone, (
        "rrm/server/console/locale/messages.pot is stale;\n"
        f"texts not in it: {', '.join(new) or 'none'}\n"
        f"texts no longer used: {', '.join(gone) or 'none'}\n({UPDATE})"
    )


@pytest.mark.parametrize(
    ("lang", "english", "expected"),
    [
        ("es", "My work", "Mi trabajo"),
        ("fr", "My work", "Mon travail"),
        ("es", "Sign in", "Iniciar sesión"),
        ("fr", "Sign in", "Se connecter"),
        ("es", "Sign out", "Cerrar sesión"),
        ("fr", "Sign out", "Se déconnecter"),
        ("es", "Cases", "Casos"),
        ("fr", "Cases", "Dossiers"),
        ("es", "Change", "Cambiar"),
        ("fr", "Change", "Changer"),
        ("es", "Language", "Idioma"),
        ("fr", "Language", "Langue"),
        ("es", "NOMINAL", "NOMINAL"),
        ("fr", "NOMINAL", "NOMINAL"),
        ("en", "My work", "My work"),
    ],
)
def test_the_compiled_catalogue_translates(
    lang: str, english: str, expected: str
) -> None:
    assert translations(lang).gettext(english) == expected


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        ("es", "Vencen en los próximos 5 días hábiles · Mi trabajo"),
        ("fr", "Échéance dans les 5 prochains jours ouvrables · Mon travail"),
        ("en", "Due within 5 business days · My work"),
    ],
)
def test_templates_render_in_the_officer_language(lang: str, expected: str) -> None:
    env = Environment(extensions=["jinja2.ext.i18n"], autoescape=True)
    env.install_gettext_translations(translations(lang), newstyle=True)  # type: ignore[attr-defined]
    template = env.from_string(
        '{{ _("Due within {n} {unit}").format(n=5, unit=_("business days")) }}'
        ' · {{ _("My work") }}'
    )
    assert template.render() == expected
