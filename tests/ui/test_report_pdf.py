"""`medcal report`: the PDF Qt writes from a real quantize and eval of the tiny model opens, is not blank and
holds the figures (checked with poppler's tools where installed, and by rendering the page with Qt)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PySide6.QtGui import QColor, QImage

from medcal_gui.calibrate.imatrix import compute_imatrix
from medcal_gui.cli.main import main as cli_main
from medcal_gui.core.svg_chart import plot_eval
from medcal_gui.evaluate.evaluate import evaluate
from medcal_gui.quantize.quantize import quantize_model
from medcal_gui.quantize.quantize_process import warm_children
from medcal_gui.ui.views.report_pdf import render_page
from medcal_gui.workflows.handover.publish_facts import gather_facts
from medcal_gui.workflows.handover.report_doc import build_report


@pytest.fixture(scope="module")
def inputs(tiny_model: Path, sample_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("report-in")
    imatrix = d / "tiny.imatrix.gguf"
    compute_imatrix(tiny_model, [sample_file], n_ctx=128, n_chunks=4, out=imatrix)
    q8, q4 = d / "tiny-q8_0.gguf", d / "tiny-q4_0.gguf"
    with warm_children():  # the second finds its child started
        quantize_model(tiny_model, q8, "Q8_0", imatrix=imatrix)
        quantize_model(tiny_model, q4, "Q4_0", imatrix=imatrix)
    res = evaluate(tiny_model, [q8, q4], sample_file, n_ctx=128, n_chunks=4, use_cache=False)
    ev = d / "eval.json"
    ev.write_text(json.dumps(res.to_json()), encoding="utf-8")
    plot = plot_eval([m.name for m in res.models], [m.kld_values for m in res.models],
                     [m.ppl_ratio for m in res.models], d / "hist.svg", title="tiny on samples")
    # ladder.json and mcq.json as `medcal ladder` / the behaviour checks write them (their keys)
    rungs = [{"type": m.name.split("-")[1].upper(), "file": str(m.model), "bytes": m.model.stat().st_size,
              "bpw": 8.5 if "q8" in m.name else 4.5, "sha256": "", "kld_mean": m.kld_mean, "kld_p99": m.kld_p99,
              "same_top_pct": m.same_top_pct, "ppl_ratio": m.ppl_ratio, "tg_tokens_per_s": 100.0,
              "speedup_tg": 1.5, "pareto": True} for m in res.models]
    ladder = d / "ladder.json"
    ladder.write_text(json.dumps({"rungs": rungs, "recommendation": {"type": "Q8_0", "reason": "smallest within"
                                                                     " the KLD bound"}}), encoding="utf-8")
    mcq = d / "mcq.json"
    mcq.write_text(json.dumps({"n_questions": 20, "models": [
        {"model": str(tiny_model), "name": "base", "accuracy": {"k": 12, "n": 20, "value": 0.6}},
        {"model": str(q4), "name": "q4", "accuracy": {"k": 10, "n": 20, "value": 0.5}}],
        "flips": [{"a": "base", "b": "q4", "n_lost": 3, "n_gained": 1, "mcnemar_p": 0.625}]}), encoding="utf-8")
    return {"base": tiny_model, "q8": q8, "q4": q4, "imatrix": imatrix, "eval": ev, "plot": plot,
            "ladder": ladder, "mcq": mcq, "calib": sample_file}


def _ink(img: QImage) -> tuple[int, int]:
    """(pixels that are not white, pixels with colour) on a coarse grid."""
    dark = colour = 0
    for y in range(0, img.height(), 3):
        for x in range(0, img.width(), 3):
            c = QColor(img.pixel(x, y))
            if c.lightness() < 240:
                dark += 1
            if c.saturation() > 120 and c.value() > 140:  # the figures' colours, not the dark-blue headings
                colour += 1
    return dark, colour


def test_report_pdf_opens_and_holds_the_figures(qapp: object, inputs: dict[str, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "REPORT.pdf"
    rc = cli_main(["report", str(inputs["q8"]), str(inputs["q4"]), "--base", str(inputs["base"]),
                   "--calibration", str(inputs["calib"]), "--eval", str(inputs["eval"]), "--plot",
                   str(inputs["plot"]), "--ladder", str(inputs["ladder"]), "--mcq", str(inputs["mcq"]),
                   "--reviewer", "Dr. A. Reviewer", "-o", str(out), "--json"])
    assert rc == 0
    info = json.loads(capsys.readouterr().out)
    data = out.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    assert info["pages"] >= 1 and len(re.findall(rb"/Type\s*/Page(?!s)", data)) == info["pages"]
    ev = json.loads(inputs["eval"].read_text(encoding="utf-8"))
    q4_kld = f"{ev['models'][1]['kld_mean']:.5f}"
    assert info["figures"]["Q4_0.kld_mean"] == q4_kld
    # the page as Qt lays it out: text and the coloured histogram are on it
    facts = gather_facts([inputs["q8"], inputs["q4"]], base=inputs["base"], eval_json=inputs["eval"],
                         ladder=inputs["ladder"], mcq=inputs["mcq"])
    doc = build_report(facts, hist_svg=inputs["plot"])
    assert set(doc.images) == {"kld_histogram.png", "ladder.png"}
    dark, colour = _ink(render_page(doc, 0, width_px=600))
    assert dark > 2000 and colour > 20, (dark, colour)  # 0 without the figures
    if shutil.which("pdftotext") is None or shutil.which("pdftoppm") is None:
        pytest.skip("poppler-utils (pdftotext, pdftoppm) not installed: the PDF's text was not read back")
    text = subprocess.run(["pdftotext", "-layout", str(out), "-"], capture_output=True, text=True,
                          check=True).stdout
    flat = " ".join(text.split())
    for needle in (facts.base["sha256"], facts.quants[1].sha256, q4_kld, "McNemar", "0.625",
                   "Dr. A. Reviewer", "signature", "Quantization report"):
        assert needle in flat, needle
    subprocess.run(["pdftoppm", "-r", "50", "-f", "1", "-l", "1", "-png", str(out), str(tmp_path / "p")],
                   check=True)
    page1 = QImage(str(next(tmp_path.glob("p*.png"))))
    assert not page1.isNull()
    dark, colour = _ink(page1)
    assert dark > 1000 and colour > 10, (dark, colour)


def test_report_refuses_a_non_pdf_name_and_bad_plot(qapp: object, inputs: dict[str, Path], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli_main(["report", str(inputs["q8"]), "-o", str(tmp_path / "r.txt")])
    assert rc != 0 and "name it .pdf" in capsys.readouterr().err
    rc = cli_main(["report", str(inputs["q8"]), "--plot", str(inputs["eval"]), "-o", str(tmp_path / "r.pdf")])
    err = capsys.readouterr().err
    assert rc != 0 and "not an SVG figure" in err and "Traceback" not in err
    assert not (tmp_path / "r.pdf").exists()


def test_window_publishes_and_reports_the_last_quant(qtbot, bench, inputs: dict[str, Path],  # type: ignore[no-untyped-def]
                                                     tmp_path: Path) -> None:
    from medcal_gui.ui.views.hand_over import publish_to, report_to

    bench.last_quant = inputs["q4"]
    bench.settings.set("quantize/last_base", str(inputs["base"]))
    messages: list[str] = []
    bench.message.connect(messages.append)
    folder = tmp_path / "pub"
    assert publish_to(bench, [inputs["q4"]], folder)
    qtbot.waitUntil(lambda: any(m.startswith("Published") for m in messages), timeout=30000)
    assert (folder / "SHA256SUMS").is_file() and (folder / "README.md").is_file()
    r = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=folder, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout
    pdf = tmp_path / "REPORT.pdf"
    assert report_to(bench, [inputs["q4"]], pdf)
    qtbot.waitUntil(lambda: any(m.startswith("Wrote the report") for m in messages), timeout=30000)
    assert pdf.read_bytes().startswith(b"%PDF-")


def test_file_menu_has_publish_and_report(window) -> None:  # type: ignore[no-untyped-def]
    texts = [a.text() for a in window.menuBar().actions()[0].menu().actions()]
    assert "&Publish…" in texts and "Quantization &report…" in texts


def test_without_a_histogram_the_eval_figures_become_bars(qapp: object, inputs: dict[str, Path]) -> None:
    facts = gather_facts([inputs["q8"], inputs["q4"]], eval_json=inputs["eval"])
    doc = build_report(facts)
    assert set(doc.images) == {"kld_ranking.png"}
    dark, colour = _ink(render_page(doc, 0, width_px=600))
    assert colour > 10, colour  # 0 without the bars
