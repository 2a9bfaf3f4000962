"""The PHI scan: dates, phones, e-mails, record numbers and titled names warn (with the record id), never block."""

from __future__ import annotations

import json

import pytest

from medcal_gui.dataset.validation import phi
from medcal_gui.dataset.validation.validate import validate_file


@pytest.mark.parametrize("snippet, kind, matched", [
    ("admitted on 12/03/2021 to the ward", "date", "12/03/2021"),
    ("echo done 2021-03-12 in clinic", "date", "2021-03-12"),
    ("seen on March 3, 2021 by cardiology", "date", "March 3, 2021"),
    ("seen on 3rd March 2021 by cardiology", "date", "3rd March 2021"),
    ("call back on 555-123-4567 after discharge", "phone", "555-123-4567"),
    ("ward phone (020) 794 6095 overnight", "phone", "(020) 794 6095"),
    ("results sent to jane.doe@example.org today", "email", "jane.doe@example.org"),
    ("MRN: A1234567 on the wristband", "identifier", "MRN: A1234567"),
    ("chart 12345678 reviewed", "identifier", "12345678"),
    ("reviewed by Dr. Okafor at the bedside", "name", "Dr. Okafor"),
    ("Mrs Whitfield, the patient's mother, consented", "name", "Mrs Whitfield"),
])
def test_each_kind_of_identifier_is_found(snippet, kind, matched):
    hits = phi.scan("Adult patient.\n" + snippet, "a-0007", 10)
    assert [(x.kind, x.text, x.line, x.record_id) for x in hits] == [(kind, matched, 11, "a-0007")]


@pytest.mark.parametrize("clinical", [
    "BP 118/72 mmHg", "at 02:40 overnight", "HR 72 bpm, QTc 412 ms", "intermittent 2:1 AV block",
    "temperature 36.8 \u00b0C", "norepinephrine 0.08 \u00b5g/kg/min", "ratio 1.5-2.0 times", "RR 18/min",
    "mean HR 84 \u00b1 6 bpm", "38 premature complexes in 24 h", "SpO2 97% on 4 L",
])
def test_vitals_and_times_are_not_phi(clinical):
    assert phi.scan("Adult patient, " + clinical + ".", "a-0001", 1) == []


def test_sample_narratives_have_no_phi(sample_file):
    r = validate_file(sample_file)
    assert r.records == 38 and r.phi == []
    assert not any(w.startswith("Possible PHI") for w in r.warnings)


def test_phi_in_formatted_file_warns_with_record_id_and_never_errors(tmp_path, h):
    texts = [h.ADULT, h.NEONATE + "\nDischarged to Mr. Haldane, call 555-201-3344."]
    p = tmp_path / "f.txt"
    p.write_text("".join(h.SEED_RECORD.format(narrative=t) for t in texts), encoding="utf-8")
    r = validate_file(p)
    assert r.errors == []
    # Record 2's user turn is line 12; its narrative starts on 15 and the identifiers sit on 16.
    assert r.warnings == [
        "Possible PHI in record f-0002 (line 16): a phone number ('555-201-3344').",
        "Possible PHI in record f-0002 (line 16): a titled name ('Mr. Haldane').",
    ]
    assert next(c for c in r.checks if c.title.startswith("No obvious PHI")).status == "warn"


def test_export_with_phi_still_writes_and_warns(cli, make_file, tmp_path, h):
    src = make_file.narratives("phi.txt", [h.ADULT + " Contact: nurse.lee@hospital.example.com"])
    out = tmp_path / "out.txt"
    rc, stdout, err = cli("format", src, "-o", out, "--json")
    assert rc == 0, err
    res = json.loads(stdout)
    assert res["errors"] == []
    # The line is the formatted file's: user turn 1, marker 2, instruction 3, narrative 4.
    assert "Possible PHI in record phi-0001 (line 4): an e-mail address ('nurse.lee@hospital.example.com')." \
        in res["warnings"]
    assert "nurse.lee@hospital.example.com" in out.read_text(encoding="utf-8")
    rc, stdout, _ = cli("validate", out, "--json")
    assert rc == 0
    assert [p["kind"] for p in json.loads(stdout)["phi"]] == ["email"]
