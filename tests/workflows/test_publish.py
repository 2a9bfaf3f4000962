"""`medcal publish`: the folder a quant is handed over in, built from a real quantize of the tiny model."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import gguf
import pytest
import yaml
from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata

from medcal_gui.calibrate.imatrix import compute_imatrix
from medcal_gui.cli.main import main as cli_main
from medcal_gui.core.errors import InputError, OutputError
from medcal_gui.quantize.quantize import quantize_model
from medcal_gui.workflows.handover.ollama_modelfile import ollama_gemma_template
from medcal_gui.workflows.handover.publish import publish_folder
from medcal_gui.workflows.handover.publish_facts import gather_facts

DESCRIPTION = "A tiny random Gemma 3 for tests; not for clinical use."


@pytest.fixture(scope="module")
def work(tiny_model: Path, sample_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("publish-in")
    base = d / "tiny-base-f32.gguf"
    reader = gguf.GGUFReader(str(tiny_model))
    writer = gguf.GGUFWriter(str(base), arch="gemma3", endianess=reader.endianess)
    copy_with_new_metadata(reader, writer, {
        "general.license": MetadataDetails(gguf.GGUFValueType.STRING, "gemma"),
        "general.description": MetadataDetails(gguf.GGUFValueType.STRING, DESCRIPTION)}, [])
    calib = d / "calibration.txt"
    calib.write_text(sample_file.read_text(encoding="utf-8"), encoding="utf-8")
    imatrix = d / "tiny.imatrix.gguf"
    compute_imatrix(base, [calib], n_ctx=128, n_chunks=4, out=imatrix)
    out = {"base": base, "calib": calib, "imatrix": imatrix}
    for t in ("Q8_0", "Q4_0"):
        out[t] = d / f"tiny-{t.lower()}.gguf"
        quantize_model(base, out[t], t, imatrix=imatrix)
    return out


def _parse_modelfile(text: str) -> list[tuple[str, str]]:
    """Ollama's Modelfile grammar (docs/modelfile.md): `INSTRUCTION value` per line, values in triple quotes
    may span lines, `#` lines are comments; instructions are FROM, PARAMETER, TEMPLATE, SYSTEM, ADAPTER,
    LICENSE, MESSAGE (case-insensitive)."""
    known = {"FROM", "PARAMETER", "TEMPLATE", "SYSTEM", "ADAPTER", "LICENSE", "MESSAGE"}
    out: list[tuple[str, str]] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = re.match(r"^(\w+)\s+(.*)$", line)
        assert m, f"not an instruction line: {line!r}"
        ins, value = m.group(1).upper(), m.group(2)
        assert ins in known, f"unknown instruction {ins}"
        if value.startswith('"""'):
            body = value[3:]
            while '"""' not in body:
                assert i < len(lines), "unterminated triple-quoted value"
                body += "\n" + lines[i]
                i += 1
            value, rest = body.split('"""', 1)
            assert not rest.strip(), f"text after the closing quotes: {rest!r}"
        out.append((ins, value))
    return out


def test_publish_folder_card_sums_and_modelfiles(work: dict[str, Path], tmp_path: Path) -> None:
    dest = tmp_path / "pub"
    facts = gather_facts([work["Q8_0"], work["Q4_0"]], base=work["base"], calibration=work["calib"])
    res = publish_folder(facts, dest)
    names = sorted(p.name for p in dest.iterdir())
    model = facts.model_name
    assert model == "medcal-tiny-gemma3-random-weights"  # from general.name, as hubs name files
    for t in ("Q8_0", "Q4_0"):
        assert f"{model}-{t}.gguf" in names and f"{model}-{t}.Modelfile" in names
        assert f"{model}-{t}.gguf.manifest.json" in names
        assert (dest / f"{model}-{t}.gguf").read_bytes() == work[t].read_bytes()
        assert (dest / f"{model}-{t}.gguf").stat().st_ino == work[t].stat().st_ino  # same fs: hard link
    assert f"{model}.imatrix.gguf" in names
    assert "calibration.txt" not in names  # never the text unless asked
    assert res.linked == 3
    # the card's front matter is YAML with the keys hubs read
    card = (dest / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\n")
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["base_model_relation"] == "quantized"
    assert front["license"] == "gemma"
    assert front["pipeline_tag"] == "text-generation"
    assert {"gguf", "medical", "imatrix"} <= set(front["tags"])
    assert front["base_model"]
    assert DESCRIPTION in card and "validate this file on your own cases" in card
    assert f"--imatrix {model}.imatrix.gguf --type Q4_0 -o {model}-Q4_0.gguf" in card
    assert facts.calibration and facts.calibration["sha256"] in card
    assert work["calib"].read_text(encoding="utf-8")[:60] not in card
    # SHA256SUMS lists every file and verifies with the real tool
    sums = (dest / "SHA256SUMS").read_text(encoding="utf-8").splitlines()
    assert sorted(s.split("  ", 1)[1] for s in sums) == sorted(n for n in names if n != "SHA256SUMS")
    r = subprocess.run(["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=dest, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count(": OK") == len(sums)
    # each Modelfile follows Ollama's grammar and carries FROM, the Go template and the stop token
    mf = _parse_modelfile((dest / f"{model}-Q4_0.Modelfile").read_text(encoding="utf-8"))
    assert ("FROM", f"./{model}-Q4_0.gguf") in mf
    assert ("PARAMETER", 'stop "<end_of_turn>"') in mf
    template = dict(mf)["TEMPLATE"]
    assert template == ollama_gemma_template()
    assert "{{ .Content }}" in template and "<start_of_turn>model" in template
    assert template.count("{{") == template.count("}}")
    opens = len(re.findall(r"{{-?\s*(?:range|if)\b", template))
    assert opens == len(re.findall(r"{{-?\s*end\b", template))


def test_publish_refuses_mixed_bases_and_another_bases_folder(work: dict[str, Path], tiny_model: Path,
                                                               tmp_path: Path) -> None:
    other = tmp_path / "other-q8.gguf"
    quantize_model(tiny_model, other, "Q8_0")  # the tiny model without the licence: another base
    with pytest.raises(InputError, match="different base models"):
        gather_facts([work["Q8_0"], other])
    dest = tmp_path / "pub"
    publish_folder(gather_facts([work["Q8_0"]]), dest)
    before = sorted(p.name for p in dest.iterdir())
    with pytest.raises(InputError, match="another base model"):
        publish_folder(gather_facts([other]), dest)
    assert sorted(p.name for p in dest.iterdir()) == before


def test_phi_flagged_calibration_needs_confirmation_by_name(work: dict[str, Path], tmp_path: Path) -> None:
    flagged = tmp_path / "flagged_calibration.txt"
    flagged.write_text(work["calib"].read_text(encoding="utf-8")
                       + "\nCall the patient back on 555-123-4567 or j.doe@example.org.\n", encoding="utf-8")
    dest = tmp_path / "pub"
    facts = gather_facts([work["Q8_0"]], calibration=flagged)
    with pytest.raises(InputError, match="--yes-publish-flagged flagged_calibration.txt"):
        publish_folder(facts, dest, include_calibration=True)
    assert not (dest / "flagged_calibration.txt").exists()
    with pytest.raises(InputError, match="PHI scan"):
        publish_folder(facts, dest, include_calibration=True, confirm_flagged=["other.txt"])
    res = publish_folder(facts, dest, include_calibration=True, confirm_flagged=["flagged_calibration.txt"])
    assert (dest / "flagged_calibration.txt").read_bytes() == flagged.read_bytes()
    assert any("confirmed by name" in w for w in res.warnings)


def test_cli_publish_with_figures_and_clean_error(work: dict[str, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "pub"
    ev = tmp_path / "eval.json"
    ev.write_text(json.dumps({"models": [{"model": str(work["Q4_0"]), "kld_mean": 0.01234, "same_top_pct": 91.5,
                                          "ppl_ratio": 1.0321, "kld_p99": 0.2, "tokens_per_s": 812.0}]}))
    mcq = tmp_path / "mcq.json"
    mcq.write_text(json.dumps({"models": [{"model": str(work["Q4_0"]), "name": "q4",
                                           "accuracy": {"k": 7, "n": 10, "value": 0.7}}],
                               "flips": [{"a": "base", "b": "q4", "n_lost": 2, "n_gained": 1, "mcnemar_p": 1.0}]}))
    rc = cli_main(["publish", str(work["Q4_0"]), "-d", str(dest), "--base", str(work["base"]),
                   "--eval", str(ev), "--mcq", str(mcq), "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert "README.md" in out["files"]
    card = (dest / "README.md").read_text(encoding="utf-8")
    row = next(line for line in card.splitlines() if line.startswith("| ") and "Q4_0 |" in line)
    assert "0.01234" in row and "91.5 %" in row and "1.0321" in row and "70 % (7/10)" in row
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    rc = cli_main(["publish", str(work["Q4_0"]), "-d", str(dest), "--ladder", str(bad)])
    err = capsys.readouterr().err
    assert rc != 0 and "not valid JSON" in err and "Traceback" not in err


def test_mmproj_goes_with_every_modelfile_and_later_publishes_add_up(work: dict[str, Path],
                                                                     tmp_path: Path) -> None:
    mmproj = tmp_path / "mmproj-tiny-f16.gguf"  # any GGUF stands in for the projector here
    mmproj.write_bytes(work["base"].read_bytes())
    dest = tmp_path / "pub"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine", encoding="utf-8")  # a file of the user's: left alone, not listed
    facts = gather_facts([work["Q8_0"]], base=work["base"], mmproj=mmproj)
    publish_folder(facts, dest)
    model = facts.model_name
    mm = f"mmproj-{model}-F16.gguf"
    assert (dest / mm).read_bytes() == mmproj.read_bytes()
    froms = [v for k, v in _parse_modelfile((dest / f"{model}-Q8_0.Modelfile").read_text()) if k == "FROM"]
    assert froms == [f"./{model}-Q8_0.gguf", f"./{mm}"]
    assert f"--mmproj {mm}" in (dest / "README.md").read_text(encoding="utf-8")
    publish_folder(gather_facts([work["Q4_0"]], base=work["base"]), dest)  # same base: adds to the folder
    listed = {line.split("  ", 1)[1] for line in (dest / "SHA256SUMS").read_text().splitlines()}
    assert {f"{model}-Q8_0.gguf", f"{model}-Q4_0.gguf", mm, "publish.json", "README.md"} <= listed
    assert "notes.txt" not in listed and (dest / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert subprocess.run(["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=dest, capture_output=True).returncode == 0
    assert not [p for p in dest.iterdir() if p.name.startswith(".medcal-")]  # no temporary left behind
    card = (dest / "README.md").read_text(encoding="utf-8")
    assert f"| {model}-Q8_0.gguf |" in card and f"| {model}-Q4_0.gguf |" in card  # the card lists the folder


def test_a_quant_changed_after_its_manifest_is_refused(work: dict[str, Path], tmp_path: Path) -> None:
    q = tmp_path / work["Q8_0"].name
    q.write_bytes(work["Q8_0"].read_bytes() + b"\0")
    (tmp_path / (q.name + ".manifest.json")).write_bytes(
        work["Q8_0"].with_name(work["Q8_0"].name + ".manifest.json").read_bytes())
    with pytest.raises(InputError, match="changed after it was quantized"):
        gather_facts([q])


def test_a_file_of_the_users_is_never_replaced(work: dict[str, Path], tmp_path: Path) -> None:
    dest = tmp_path / "pub"
    dest.mkdir()
    (dest / "README.md").write_text("my own notes", encoding="utf-8")
    with pytest.raises(OutputError, match="README.md, which medcal did not publish"):
        publish_folder(gather_facts([work["Q8_0"]]), dest)
    assert sorted(p.name for p in dest.iterdir()) == ["README.md"]
    assert (dest / "README.md").read_text(encoding="utf-8") == "my own notes"
