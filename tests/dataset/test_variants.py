"""Prompt variants: shipped TOML data files, and the user's own in MEDCAL_HOME/variants."""

from __future__ import annotations

import dataclasses
import tomllib

import pytest

from medcal_gui.core.errors import InputError
from medcal_gui.core.resources import variants_dir
from medcal_gui.dataset.variants import (
    DEFAULT_VARIANT,
    Variant,
    get_variant,
    load_variant_file,
    load_variants,
    save_user_variant,
    variant_to_toml,
)

MINE = Variant(name="my_triage", title="Triage \"quick\" look", marker="[TRIAGE]",
               instruction="Triage the following cardiac record:",
               response=("Triage done. Path C:\\notes kept ", "second line."), description="test")


def test_three_shipped_variants_with_default_first():
    vs = load_variants()
    assert list(vs) == ["quantization_calibration", "clinical_analysis", "night_sentinel"]
    assert DEFAULT_VARIANT == "quantization_calibration"
    assert all(v.builtin for v in vs.values())
    assert {v.name: v.output_name for v in vs.values()} == {
        "quantization_calibration": "medgemma_calibration_quantization.txt",
        "night_sentinel": "medgemma_calibration_night_sentinel.txt",
        "clinical_analysis": "medgemma_calibration_clinical_analysis.txt",
    }
    assert {v.marker for v in vs.values()} == {"[QUANTIZATION CALIBRATION]", "[NIGHT SENTINEL MONITORING]",
                                               "[CLINICAL ANALYSIS]"}


def test_shipped_variants_are_data_files():
    assert sorted(p.stem for p in variants_dir().glob("*.toml")) == [
        "clinical_analysis", "night_sentinel", "quantization_calibration"]


def test_default_variant_keeps_the_seeds_trailing_spaces():
    v = get_variant("quantization_calibration")
    assert v.instruction == ("Process the following cardiac monitoring interpretation for model quantization "
                             "calibration:")
    assert v.response == (
        "Clinical assessment complete. I have processed the cardiac monitoring data and documented ",
        "the rhythm analysis, vital signs, and clinical recommendations. This record is calibrated ",
        "for quantization-aware model optimization in cardiology domain.",
    )


def test_saved_user_variant_lands_in_medcal_home_and_loads(_private_medcal_home):
    path = save_user_variant(MINE)
    assert path == _private_medcal_home / "variants" / "my_triage.toml"
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    assert data["response"] == ["Triage done. Path C:\\notes kept ", "second line."]
    vs = load_variants()
    assert list(vs)[0] == DEFAULT_VARIANT and list(vs)[-1] == "my_triage"
    got = vs["my_triage"]
    assert not got.builtin and got.path == str(path)
    assert (got.title, got.marker, got.instruction, got.response) == (
        MINE.title, MINE.marker, MINE.instruction, MINE.response)
    assert got.output_name == "medgemma_calibration_my_triage.txt"
    assert get_variant("my_triage") == got


def test_user_variant_round_trips_through_toml(tmp_path):
    p = tmp_path / "x.toml"
    p.write_text(variant_to_toml(MINE), encoding="utf-8")
    got = load_variant_file(p)
    assert dataclasses.replace(got, path="", filename="") == dataclasses.replace(MINE, filename="")


def test_shipped_name_cannot_be_saved_by_the_user(_private_medcal_home):
    with pytest.raises(InputError, match="'night_sentinel' is a shipped variant"):
        save_user_variant(dataclasses.replace(MINE, name="night_sentinel"))
    assert not (_private_medcal_home / "variants" / "night_sentinel.toml").exists()


@pytest.mark.parametrize("change, message", [
    ({"instruction": "Read <start_of_turn> this"}, "instruction contains <start_of_turn>"),
    ({"response": ("ok", "done <end_of_turn>")}, "response contains <end_of_turn>"),
    ({"marker": "[A]\n[B]"}, "marker must be a single line"),
    ({"name": "Bad Name"}, "must be lower-case letters"),
    ({"instruction": "  "}, "has no instruction line"),
])
def test_invalid_user_variant_is_refused(_private_medcal_home, change, message):
    with pytest.raises(InputError, match=message):
        save_user_variant(dataclasses.replace(MINE, **change))
    assert not (_private_medcal_home / "variants").exists() or not any(
        (_private_medcal_home / "variants").iterdir())


def test_broken_user_file_does_not_hide_shipped_variants(_private_medcal_home):
    udir = _private_medcal_home / "variants"
    udir.mkdir(parents=True)
    (udir / "broken.toml").write_text("name = [unclosed", encoding="utf-8")
    (udir / "nofield.toml").write_text('name = "nofield"\n', encoding="utf-8")
    assert list(load_variants()) == ["quantization_calibration", "clinical_analysis", "night_sentinel"]


def test_variant_file_lacking_a_field_says_which(tmp_path):
    p = tmp_path / "v.toml"
    p.write_text('name = "v"\nresponse = ["x"]\n', encoding="utf-8")
    with pytest.raises(InputError, match="lacks the field 'instruction'"):
        load_variant_file(p)


def test_unknown_variant_lists_the_choices():
    with pytest.raises(InputError, match="Unknown variant 'nope': choose one of quantization_calibration, "
                                         "clinical_analysis, night_sentinel"):
        get_variant("nope")


def test_cli_formats_with_a_user_variant(cli, make_file, tmp_path, h):
    save_user_variant(MINE)
    src = make_file.narratives("a.txt", [h.ADULT])
    out = tmp_path / "out.txt"
    rc, _, err = cli("format", src, "-o", out, "--variant", "my_triage")
    assert rc == 0, err
    assert out.read_text(encoding="utf-8") == (
        "<start_of_turn>user\n[TRIAGE]\nTriage the following cardiac record:\n" + h.ADULT + "\n<end_of_turn>\n"
        "<start_of_turn>model\nTriage done. Path C:\\notes kept \nsecond line.\n<end_of_turn>\n\n")


def test_control_characters_in_a_saved_variant_round_trip_through_real_toml(_private_medcal_home):
    # The hand-written writer wrote a raw CR (invalid TOML) and the loader then dropped the file silently.
    v = dataclasses.replace(MINE, title="Triage\r(CR)", description="line one\r\nline two \x01\x7f \"q\" \\ end")
    path = save_user_variant(v)
    assert tomllib.loads(path.read_text(encoding="utf-8"))["description"] == v.description
    problems: list[str] = []
    got = load_variants(problems=problems)["my_triage"]
    assert problems == []
    assert (got.title, got.description, got.response) == (v.title, v.description, v.response)


@pytest.mark.parametrize("field, value", [("instruction", "Read\rthis"), ("marker", "[A\x1b]"),
                                          ("response", ("ok\x00", "done"))])
def test_control_characters_in_prompt_fields_are_refused(_private_medcal_home, field, value):
    with pytest.raises(InputError, match="control character U\\+00"):
        save_user_variant(dataclasses.replace(MINE, **{field: value}))


@pytest.mark.parametrize("filename", ["/tmp/escaped.txt", "../escaped.txt", "sub/x.txt", "sub\\x.txt", "..",
                                      "C:x.txt", ".hidden.txt"])
def test_variant_filename_outside_the_output_folder_is_refused(_private_medcal_home, filename):
    with pytest.raises(InputError, match="must be a plain file name"):
        save_user_variant(dataclasses.replace(MINE, filename=filename))


def _user_file(home, name, text):
    udir = home / "variants"
    udir.mkdir(parents=True, exist_ok=True)
    (udir / name).write_text(text, encoding="utf-8")
    return udir / name


def test_broken_user_files_are_reported_with_file_and_toml_line(_private_medcal_home):
    bad = _user_file(_private_medcal_home, "broken.toml", 'name = "broken"\ntitle = "x\n')
    esc = _user_file(_private_medcal_home, "esc.toml", variant_to_toml(MINE).replace(
        'filename = "medgemma_calibration_my_triage.txt"', 'filename = "../escaped.txt"'))
    problems: list[str] = []
    assert list(load_variants(problems=problems)) == ["quantization_calibration", "clinical_analysis",
                                                      "night_sentinel"]
    assert len(problems) == 2
    assert str(bad) in problems[0] and "line 2" in problems[0]
    assert str(esc) in problems[1] and "'../escaped.txt' must be a plain file name" in problems[1]
