"""File > Publish… lists what will be copied, from where and why, before anything is written; Cancel writes
nothing. On a real quantize of the tiny model whose manifest names a private file as its imatrix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PySide6.QtWidgets import QDialog, QDialogButtonBox

from medcal_gui.calibrate.imatrix import compute_imatrix
from medcal_gui.quantize.quantize import quantize_model
from medcal_gui.workflows.handover.publish import PublishPlan, plan_publish
from medcal_gui.workflows.handover.publish_facts import gather_facts

MODEL = "medcal-tiny-gemma3-random-weights"


@pytest.fixture(scope="module")
def quants(tiny_model: Path, sample_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("plan-in")
    imatrix = d / "tiny.imatrix.gguf"
    compute_imatrix(tiny_model, [sample_file], n_ctx=128, n_chunks=2, out=imatrix)
    q = d / "tiny-q8_0.gguf"
    quantize_model(tiny_model, q, "Q8_0", imatrix=imatrix)
    # the same quant as downloaded, its manifest naming a private key as the importance matrix
    secret = d / "id_rsa"
    secret.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n", encoding="utf-8")
    dl = d / "download"
    dl.mkdir()
    shutil.copyfile(q, dl / q.name)
    doc = json.loads(q.with_name(q.name + ".manifest.json").read_text(encoding="utf-8"))
    doc["imatrix"]["path"] = str(secret)
    (dl / (q.name + ".manifest.json")).write_text(json.dumps(doc), encoding="utf-8")
    return {"q": q, "imatrix": imatrix, "hostile": dl / q.name, "secret": secret}


def test_the_dialog_lists_each_copy_with_its_source_and_reason(qtbot, quants: dict[str, Path],  # type: ignore[no-untyped-def]
                                                               tmp_path: Path) -> None:
    from medcal_gui.ui.views.hand_over import PublishPlanDialog

    plan = plan_publish(gather_facts([quants["hostile"]]), tmp_path / "pub")
    dlg = PublishPlanDialog(plan)
    qtbot.addWidget(dlg)
    lines = dlg.lines()
    assert lines == plan.describe()
    assert [x for x in lines if x.startswith("copy")] == [
        f"copy  {MODEL}-Q8_0.gguf  <-  {quants['hostile']}  (a quant you named)"]
    assert not any("id_rsa" in x or "imatrix" in x for x in lines)
    assert lines[-1] == "write SHA256SUMS"
    box = dlg.findChild(QDialogButtonBox)
    assert box is not None and box.button(QDialogButtonBox.StandardButton.Ok).text() == "Publish"
    dlg.reject()
    assert dlg.result() == QDialog.DialogCode.Rejected
    assert not (tmp_path / "pub").exists()


def test_publish_writes_only_after_the_plan_is_confirmed(qtbot, bench, quants: dict[str, Path],  # type: ignore[no-untyped-def]
                                                         tmp_path: Path) -> None:
    from medcal_gui.ui.views.hand_over import publish_to

    messages: list[str] = []
    bench.message.connect(messages.append)
    seen: list[PublishPlan] = []
    folder = tmp_path / "pub"

    def refuse(plan: PublishPlan) -> bool:
        seen.append(plan)
        assert not folder.exists()  # asked before anything is written
        return False

    assert publish_to(bench, [quants["q"]], folder, confirm=refuse)
    qtbot.waitUntil(lambda: any("cancelled: nothing was written" in m for m in messages), timeout=30000)
    assert not folder.exists()
    assert [c.name for c in seen[0].copies] == [f"{MODEL}-Q8_0.gguf", f"{MODEL}.imatrix.gguf"]
    assert seen[0].copies[1].source == quants["imatrix"]

    assert publish_to(bench, [quants["q"]], folder, confirm=lambda plan: True)
    qtbot.waitUntil(lambda: any(m.startswith("Published") for m in messages), timeout=30000)
    assert sorted(p.name for p in folder.iterdir()) == sorted([
        f"{MODEL}-Q8_0.gguf", f"{MODEL}-Q8_0.gguf.manifest.json", f"{MODEL}-Q8_0.Modelfile", f"{MODEL}.imatrix.gguf",
        "README.md", "publish.json", "SHA256SUMS"])
