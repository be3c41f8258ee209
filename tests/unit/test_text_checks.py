"""References and names (issue #13, item 2): NFKC, invisible characters, look-alikes.

``rrm.service.validation`` normalises references (``external_ref``,
``facility_id``, ``officer_id``) and names (facility, owner, petitioners,
officers) to NFKC once, and refuses control characters, bidirectional controls,
zero-width and other invisible characters, and words mixing alphabets, naming the
character and never the text.
"""

from __future__ import annotations

import pytest

import rrm
from rrm.service import validation as v

# -- references and names ---------------------------------------------------------


class TestReferencesAndNames:
    @pytest.mark.parametrize(
        "value",
        [
            "México",
            "Fränkische Straße 12",
            "Asociación Sindical de Trabajadores",
            "Société générale d'Île-de-France",
            "Łódź",
            "Σωματείο",
            "Профсоюз",
            "トヨタ自動車",
            "USTR-2025-001",
            "O'Brien & Hijos, S.A. de C.V.",
        ],
    )
    def test_real_names_pass_unchanged(self, value: str) -> None:
        assert v.name("facility.name", value) == value
        assert v.reference("external_ref", value) == value

    @pytest.mark.parametrize(
        ("value", "stored"),
        [
            (
                "\uff35\uff33\uff34\uff32\uff0d\uff12\uff10\uff12\uff15",
                "USTR-2025",
            ),  # fullwidth
            ("Me\u0301xico", "México"),  # decomposed accent
            ("ﬁnca", "finca"),  # ligature
            ("Nº 5", "No 5"),
            ("  MX-1\u00a0", "MX-1"),  # no-break space, stripped
        ],
    )
    def test_normalised_to_nfkc(self, value: str, stored: str) -> None:
        assert v.reference("facility_id", value) == stored

    @pytest.mark.parametrize(
        ("value", "reason"),
        [
            ("USTR\u202e100", "bidirectional control character (U+202E"),
            ("USTR\u2066100", "bidirectional control character (U+2066"),
            ("USTR\u200f1", "bidirectional control character (U+200F"),
            ("USTR\u061c1", "bidirectional control character (U+061C"),
            ("US\u200bTR", "zero-width character (U+200B"),
            ("US\u200dTR", "zero-width character (U+200D"),
            ("US\u2060TR", "zero-width character (U+2060"),
            ("\ufeffUSTR", "zero-width character (U+FEFF"),
            ("US\tTR", "control character or line break (U+0009)"),
            ("US\u2028TR", "control character or line break (U+2028"),
            ("US\x85TR", "control character or line break (U+0085)"),
            ("US\u00adTR", "invisible formatting character (U+00AD SOFT HYPHEN)"),
            (
                "Pl\u0430nta",
                "mixes Latin and Cyrillic letters in one reference (U+0430",
            ),
            (
                "US\u0422R-1",
                "mixes Latin and Cyrillic letters in one reference (U+0422",
            ),
            ("Ωmega", "mixes Greek and Latin letters in one reference (U+006D"),
            ("\u3000", "is required and must be non-empty text"),
        ],
    )
    def test_refused(self, value: str, reason: str) -> None:
        with pytest.raises(rrm.InvalidInput) as info:
            v.reference("external_ref", value)
        assert info.value.field == "external_ref"
        assert reason in info.value.reason

    def test_a_reference_is_one_word(self) -> None:
        """A reference is a code: a lone Cyrillic letter between digits is refused,
        though it makes a word of its own."""
        with pytest.raises(rrm.InvalidInput) as info:
            v.reference("facility_id", "MX-2025-0\u04210")
        assert info.value.reason.startswith(
            "mixes Latin and Cyrillic letters in one reference (U+0421"
        )
        assert v.reference("facility_id", "\u041c\u0425-7") == "\u041c\u0425-7"

    def test_words_in_two_alphabets_side_by_side_pass(self) -> None:
        """In a name, mixing is refused within one word, not between words."""
        assert v.name("facility.owner", "Grupo Москва-Latina") == "Grupo Москва-Latina"

    def test_a_refused_name_is_never_quoted(self) -> None:
        secret = "Sindic\u0430to Secreto"  # Cyrillic a
        with pytest.raises(rrm.InvalidInput) as info:
            v.name("petitioners[0].name", secret)
        assert secret not in str(info.value)
        assert "Sindic" not in str(info.value)

    def test_text_reads_reference_fields_as_references(self) -> None:
        """The handlers read external_ref (and officers to remove) through text()."""
        assert v.text("external_ref", "\uff32\uff25\uff26") == "REF"
        assert v.text("remove[0]", "\uff41\uff4e\uff41") == "ana"
        assert v.text("reason", "\uff32\uff25\uff26") == "\uff32\uff25\uff26"
        with pytest.raises(rrm.InvalidInput):
            v.text("external_ref", "R\u0415F")

    def test_facility_petitioners_and_officers_come_back_normalised(self) -> None:
        facility = v.check_facility(
            rrm.Facility(
                facility_id="\uff2d\uff38-1",
                name="Planta \uff2eorte",
                owner="Grupo",
                country=rrm.Party.MX,
            ),
            rrm.Party.MX,
        )
        assert (facility.facility_id, facility.name) == ("MX-1", "Planta Norte")
        (p,) = v.check_petitioners((rrm.Petitioner(name="Sindicato ﬁel"),))
        assert p.name == "Sindicato fiel"
        with pytest.raises(rrm.InvalidInput) as info:
            v.check_petitioners((rrm.Petitioner(name="Sindicato\u200b"),))
        assert info.value.field == "petitioners[0].name"
        spec = rrm.load_workflows().get("usmca-31a")
        (o,) = v.check_officers(
            (
                rrm.Officer(
                    officer_id=" \uff41\uff4e\uff41 ",
                    role="ustr",
                    name="Ana \uff2cópez",
                ),
            ),
            spec,
        )
        assert (o.officer_id, o.name) == ("ana", "Ana López")
        with pytest.raises(rrm.InvalidInput) as info:
            v.check_officers((rrm.Officer(officer_id="\u0430na", role="ustr"),), spec)
        assert info.value.field == "officers[0].officer_id"
