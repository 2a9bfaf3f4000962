"""Export: the default file, the seed's whole set, the log, the README, the latin-1 copy, atomic UTF-8 outputs."""

from __future__ import annotations

import codecs
import dataclasses
import hashlib
import json
import math
from datetime import datetime

from medcal_gui import __version__
from medcal_gui.core.fsutil import sha256_file
from medcal_gui.dataset.export import export_dataset
from medcal_gui.dataset.formatting import format_record
from medcal_gui.dataset.reading.loader import load_dataset
from medcal_gui.dataset.records import CHARS_PER_TOKEN
from medcal_gui.dataset.variants import get_variant

SET = ["README_CALIBRATION_DATASET.md", "calibration_dataset_log.json", "cardiology_calibration_imatrix.txt",
       "medgemma_calibration_clinical_analysis.txt", "medgemma_calibration_imatrix_formatted.txt",
       "medgemma_calibration_night_sentinel.txt", "medgemma_calibration_quantization.txt"]


def _all_variants(cli, inputs, out):
    rc, stdout, err = cli("format", *inputs, "--all-variants", "-d", out, "--json")
    assert rc == 0, err
    return json.loads(stdout)


def test_default_output_name_in_the_current_folder(cli, make_file, tmp_path, monkeypatch, h):
    src = make_file.narratives("a.txt", [h.ADULT, h.NEONATE])
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    rc, out, err = cli("format", src)
    assert rc == 0, err
    assert h.listing(work) == ["medgemma_calibration_imatrix_formatted.txt"]
    assert (work / "medgemma_calibration_imatrix_formatted.txt").read_text(encoding="utf-8") == (
        h.SEED_RECORD.format(narrative=h.ADULT) + h.SEED_RECORD.format(narrative=h.NEONATE))
    assert "2 records (1 adult, 1 neonate)" in out
    assert f"wrote {'medgemma_calibration_imatrix_formatted.txt'}" in out


def test_all_variants_writes_the_seeds_set(cli, sample_file, tmp_path, h):
    out = tmp_path / "set"
    res = _all_variants(cli, [sample_file], out)
    assert h.listing(out) == SET
    assert sorted(p.rsplit("/", 1)[-1] for p in res["outputs"]) == SET
    assert res["records"] == 38 and res["populations"] == {"adolescent": 24, "adult": 7, "neonate": 7}
    recs = load_dataset([sample_file]).records
    for name, variant in [("medgemma_calibration_quantization.txt", "quantization_calibration"),
                          ("medgemma_calibration_night_sentinel.txt", "night_sentinel"),
                          ("medgemma_calibration_clinical_analysis.txt", "clinical_analysis")]:
        v = get_variant(variant)
        assert (out / name).read_text(encoding="utf-8") == "".join(format_record(r.text, v) for r in recs)
    # The primary file is the default variant.
    assert (out / "medgemma_calibration_imatrix_formatted.txt").read_bytes() == (
        out / "medgemma_calibration_quantization.txt").read_bytes()


def test_log_records_hashes_and_metadata(cli, make_file, tmp_path, h):
    a = make_file.narratives("a.txt", [h.ADOLESCENT, h.ADULT])
    b = make_file.narratives("b.txt", [h.NEONATE, h.OTHER + " \u00b0 \u00b1"], encoding="utf-16",)
    out = tmp_path / "set"
    before = datetime.now().astimezone()
    _all_variants(cli, [a, b], out)
    log = json.loads((out / "calibration_dataset_log.json").read_text(encoding="utf-8"))
    texts = [h.ADOLESCENT, h.ADULT, h.NEONATE, h.OTHER + " \u00b0 \u00b1"]
    assert [r["sha256"] for r in log["records"]] == [hashlib.sha256(t.encode()).hexdigest() for t in texts]
    assert [r["id"] for r in log["records"]] == ["a-0001", "a-0002", "b-0001", "b-0002"]
    assert [r["source"] for r in log["records"]] == [str(a), str(a), str(b), str(b)]
    assert [r["line"] for r in log["records"]] == [3, 9, 3, 7]
    assert [r["encoding"] for r in log["records"]] == ["utf-8", "utf-8", "utf-16", "utf-16"]
    assert [r["population"] for r in log["records"]] == ["adolescent", "adult", "neonate", "other"]
    assert [r["chars"] for r in log["records"]] == [len(t) for t in texts]
    assert [r["bytes"] for r in log["records"]] == [len(t.encode()) for t in texts]
    assert [r["tokens_est"] for r in log["records"]] == [math.ceil(len(t) / CHARS_PER_TOKEN) for t in texts]
    assert log["population_statistics"] == {"adolescent": 1, "adult": 1, "neonate": 1, "other": 1}
    assert log["record_count"] == 4
    assert (log["variant"], log["layout"], log["medcal_version"]) == ("quantization_calibration", "seed",
                                                                      __version__)
    assert datetime.fromisoformat(log["created"]) >= before.replace(microsecond=0)
    assert [(f["path"], f["encoding_method"]) for f in log["source_files"]] == [(str(a), "utf-8"), (str(b), "bom")]


def test_original_format_output_reparses_to_the_same_narratives(cli, make_file, tmp_path, h):
    src = make_file.narratives("a.txt", h.NARRATIVES, eol="\r\n", encoding="cp1252")
    out = tmp_path / "set"
    _all_variants(cli, [src], out)
    orig = out / "cardiology_calibration_imatrix.txt"
    raw = orig.read_bytes()
    assert b"\r" not in raw and not raw.startswith(codecs.BOM_UTF8)
    raw.decode("utf-8")  # strict: raises if not UTF-8
    again = load_dataset([orig])
    assert again.errors == []
    assert [r.text for r in again.records] == list(h.NARRATIVES)
    assert again.files[0].encoding.method == "utf-8"


def test_readme_lists_counts_and_true_file_hashes(cli, sample_file, tmp_path):
    out = tmp_path / "set"
    _all_variants(cli, [sample_file], out)
    readme = (out / "README_CALIBRATION_DATASET.md").read_text(encoding="utf-8")
    assert "- Records: 38 (24 adolescent, 7 adult, 7 neonate)" in readme
    for name in ["medgemma_calibration_imatrix_formatted.txt", "cardiology_calibration_imatrix.txt",
                 "medgemma_calibration_night_sentinel.txt"]:
        p = out / name
        assert f"| `{name}` | {p.stat().st_size} | `{sha256_file(p)}` |" in readme


def test_utf16_input_gives_utf8_lf_output_without_bom(cli, make_file, tmp_path, h):
    src = make_file.narratives("w.txt", [h.ADULT + " 37 \u00b0C"], encoding="utf-16", eol="\r\n")
    out = tmp_path / "o.txt"
    rc, _, err = cli("format", src, "-o", out)
    assert rc == 0, err
    raw = out.read_bytes()
    assert raw == h.SEED_RECORD.format(narrative=h.ADULT + " 37 \u00b0C").encode("utf-8")


def test_latin1_copy_written_when_every_character_fits(cli, make_file, tmp_path, h):
    text = h.ADULT + " Temperature 37.9 \u00b0C, dose 5 \u00b5g, HR 80 \u00b1 5."
    src = make_file.narratives("a.txt", [text])
    out = tmp_path / "o" / "f.txt"
    rc, stdout, err = cli("format", src, "-o", out, "--latin1-copy", "--json")
    assert rc == 0, err
    copy = tmp_path / "o" / "f.latin1.txt"
    assert h.listing(tmp_path / "o") == ["f.latin1.txt", "f.txt"]
    assert copy.read_bytes() == out.read_text(encoding="utf-8").encode("latin-1")
    assert b"\xb0C" in copy.read_bytes()
    assert json.loads(stdout)["notes"] == []


def test_no_latin1_copy_when_a_character_does_not_fit(cli, make_file, tmp_path, h):
    src = make_file.narratives("a.txt", [h.ADULT, h.NEONATE + " Range 60\u201380 bpm."])
    out = tmp_path / "o" / "f.txt"
    rc, stdout, err = cli("format", src, "-o", out, "--latin1-copy", "--json")
    assert rc == 0, err
    assert h.listing(tmp_path / "o") == ["f.txt"]
    (note,) = json.loads(stdout)["notes"]
    assert note.startswith(f"No latin-1 copy: record a-0002 ({src}, line 7) has '\u2013' (U+2013)")


def test_export_overwrites_an_old_output_atomically(make_file, tmp_path, h):
    src = make_file.narratives("a.txt", [h.ADULT])
    out = tmp_path / "o" / "f.txt"
    out.parent.mkdir()
    out.write_text("old content", encoding="utf-8")
    res = export_dataset([src], out=out, variant=get_variant("quantization_calibration"))
    assert res.outputs == [out] and res.records == 1
    assert out.read_text(encoding="utf-8") == h.SEED_RECORD.format(narrative=h.ADULT)
    assert h.listing(tmp_path / "o") == ["f.txt"] and h.partials(tmp_path) == []


def test_export_result_reports_validation_and_files(make_file, tmp_path, h):
    src = make_file.narratives("a.txt", h.NARRATIVES)
    res = export_dataset([src], dest_dir=tmp_path / "o", variant=get_variant("night_sentinel"), layout="gemma")
    j = res.to_json()
    assert (j["records"], j["variant"], j["layout"], j["errors"]) == (4, "night_sentinel", "gemma", [])
    assert j["validation"]["records"] == 4 and j["validation"]["layout"] == "gemma"
    assert j["validation"]["marker"] == "[NIGHT SENTINEL MONITORING]"
    assert j["validation"]["narratives_compared"] == 4
    assert j["files"] == [{"path": str(src), "encoding": "utf-8", "encoding_method": "utf-8",
                           "chardet_confidence": None, "note": "valid UTF-8 throughout"}]
    assert j["outputs"] == [str(tmp_path / "o" / "medgemma_calibration_imatrix_formatted.txt")]


def _user_variant(home, name, filename):
    from medcal_gui.dataset.variants import save_user_variant

    base = get_variant("night_sentinel")
    v = dataclasses.replace(base, name=name, title=name, marker=f"[{name.upper()}]", builtin=False, path="",
                            filename=filename)
    udir = home / "variants"
    udir.mkdir(parents=True, exist_ok=True)
    if "/" in filename or filename.startswith("."):  # what a hand-edited file may hold: bypass the saver
        from medcal_gui.dataset.variants import variant_to_toml
        (udir / f"{name}.toml").write_text(variant_to_toml(v), encoding="utf-8")
    else:
        save_user_variant(v, udir)


def test_all_variants_never_writes_outside_the_folder(cli, make_file, tmp_path, h, _private_medcal_home):
    (tmp_path / "victim.txt").write_bytes(b"unrelated")
    _user_variant(_private_medcal_home, "escape", "../victim.txt")
    _user_variant(_private_medcal_home, "fine", "fine.txt")
    out = tmp_path / "set"
    res = _all_variants(cli, [make_file.narratives("a.txt", [h.ADULT])], out)
    assert (tmp_path / "victim.txt").read_bytes() == b"unrelated"
    assert h.listing(out) == sorted(SET + ["fine.txt"])
    assert any("escape.toml" in w and "'../victim.txt' must be a plain file name" in w for w in res["warnings"])


def test_all_variants_refuses_two_variants_writing_one_file(cli, make_file, tmp_path, h, _private_medcal_home):
    _user_variant(_private_medcal_home, "copycat", "medgemma_calibration_night_sentinel.txt")
    out = tmp_path / "set"
    rc, _, err = cli("format", make_file.narratives("a.txt", [h.ADULT]), "--all-variants", "-d", out)
    assert rc == 2
    assert ("Variant 'copycat'" in err and "'medgemma_calibration_night_sentinel.txt', which is also the file of "
            "variant 'night_sentinel'" in err)
    assert h.listing(out) == [] and h.partials(tmp_path) == []


def test_all_variants_refuses_a_variant_named_like_the_readme(cli, make_file, tmp_path, h, _private_medcal_home):
    _user_variant(_private_medcal_home, "readme", "README_CALIBRATION_DATASET.md")
    rc, _, err = cli("format", make_file.narratives("a.txt", [h.ADULT]), "--all-variants", "-d", tmp_path / "s")
    assert rc == 2 and "which is also the README" in err


def test_readme_sizes_and_hashes_match_every_file_written(cli, make_file, tmp_path, h, _private_medcal_home):
    _user_variant(_private_medcal_home, "extra", "extra.txt")
    out = tmp_path / "set"
    _all_variants(cli, [make_file.narratives("a.txt", [h.ADULT, h.NEONATE])], out)
    readme = (out / "README_CALIBRATION_DATASET.md").read_text(encoding="utf-8")
    rows = {}
    files_table = readme.split("## Files", 1)[1].split("## Sources", 1)[0]
    for line in files_table.splitlines():
        if line.startswith("| `"):
            name, size, digest = (c.strip().strip("`") for c in line.strip("|").split("|"))
            rows[name] = (int(size), digest)
    written = set(h.listing(out)) - {"README_CALIBRATION_DATASET.md", "calibration_dataset_log.json"}
    assert set(rows) == written and len(rows) == 6
    for name, (size, digest) in rows.items():
        assert (size, digest) == ((out / name).stat().st_size, sha256_file(out / name)), name
    assert "File size: not written yet" not in readme and "File size: in memory" not in readme
