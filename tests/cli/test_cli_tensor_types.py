"""`medcal quantize --tensor-type / --tensor-type-file / --prune-layers`, in a fresh process on the tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gguf


def _medcal(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    return subprocess.run([sys.executable, "-m", "medcal_gui", *args], capture_output=True, text=True, timeout=300,
                          env=env)


def test_tensor_type_options_reach_the_output_in_the_order_given(tiny_model: Path, tmp_path: Path) -> None:
    rules = tmp_path / "rules.txt"
    rules.write_text("attn_v=q6_k\nffn_down=q5_k\n", encoding="utf-8")
    out = tmp_path / "ovr.gguf"
    # the command-line rule comes first, so it wins for blk.0.ffn_down; the file's rules follow
    proc = _medcal("quantize", "-m", str(tiny_model), "--type", "Q4_K_M", "-o", str(out),
                   "--tensor-type", r"BLK\.0\.FFN_DOWN=Q8_0", "--tensor-type-file", str(rules),
                   "--tensor-type", "nosuch=q8_0", "--prune-layers", "5,", "--json")
    assert proc.returncode == 2 and "--prune-layers: '' is not a layer number" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = _medcal("quantize", "-m", str(tiny_model), "--type", "Q4_K_M", "-o", str(out),
                   "--tensor-type", r"BLK\.0\.FFN_DOWN=Q8_0", "--tensor-type-file", str(rules),
                   "--tensor-type", "nosuch=q8_0", "--json")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert [(m["pattern"], m["type"], m["tensors"]) for m in res["tensor_types"]] == [
        (r"blk\.0\.ffn_down", "q8_0", 1), ("attn_v", "q6_K", 2), ("ffn_down", "q5_K", 1), ("nosuch", "q8_0", 0)]
    assert any("nosuch=q8_0 matches no quantized tensor" in w for w in res["warnings"])
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(out)).tensors}
    assert (types["blk.0.ffn_down.weight"], types["blk.1.ffn_down.weight"]) == ("Q8_0", "Q5_K")
    assert (types["blk.0.attn_v.weight"], types["blk.1.attn_v.weight"]) == ("Q6_K", "Q6_K")


def test_a_bad_rule_file_is_one_line_naming_file_and_line(tiny_model: Path, tmp_path: Path) -> None:
    rules = tmp_path / "rules.txt"
    rules.write_text("attn_v=q6_k\nffn_down=q5_kk\n", encoding="utf-8")
    proc = _medcal("quantize", "-m", str(tiny_model), "--type", "Q4_K_M", "-o", str(tmp_path / "x.gguf"),
                   "--tensor-type-file", str(rules))
    assert proc.returncode == 2
    assert f"{rules}, line 2: 'q5_kk' is not a ggml tensor type" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "x.gguf").exists()


def test_prune_layers_from_the_command_line(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "pruned.gguf"
    proc = _medcal("quantize", "-m", str(tiny_model), "--type", "Q8_0", "-o", str(out), "--prune-layers", "1")
    assert proc.returncode == 0, proc.stderr
    assert "pruned layers: 1" in proc.stdout
    r = gguf.GGUFReader(str(out))
    assert int(r.fields["gemma3.block_count"].parts[-1][0]) == 1
    assert not any(t.name.startswith("blk.1.") for t in r.tensors)


def test_the_output_may_not_be_the_tensor_type_file(tiny_model: Path, tmp_path: Path) -> None:
    rules = tmp_path / "rules.txt"
    rules.write_text("attn_v=q6_k\n", encoding="utf-8")
    proc = _medcal("quantize", "-m", str(tiny_model), "--type", "Q8_0", "-o", str(rules), "--tensor-type-file",
                   str(rules))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr and str(rules) in proc.stderr
    assert rules.read_text(encoding="utf-8") == "attn_v=q6_k\n"
