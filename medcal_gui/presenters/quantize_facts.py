"""What step 3 (Quantize) shows, computed without Qt: the output's name, the notes on the importance matrix
for a type, how many chunks a run will do, why llama.cpp's dry-run size differs from the bits-per-weight
estimate, and what a cancelled run left on disk."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from medcal_gui.budget.limits import ModelShape, Needs, describe_needs, imatrix_needs, quantize_needs
from medcal_gui.calibrate.tokens import TokenReport
from medcal_gui.core.units import format_bytes
from medcal_gui.llama.chunks import ChunkPlan
from medcal_gui.quantize.quant_types import QuantType, imatrix_advice
from medcal_gui.workflows.calibrate_quantize import imatrix_path_for, quant_path_for

# A dry run this much larger than the estimate gets a word of explanation.
SIZE_NOTE_RATIO = 1.10


def output_path(model: Path, out_dir: str, qtype: str) -> Path:
    """The pane's output: `quant_path_for` (the one naming rule, shared with the CLI) in the chosen folder."""
    return quant_path_for(model, qtype, Path(out_dir.strip()) if out_dir.strip() else None)


def imatrix_notes(qt: QuantType, mode: str, dry_notes: Sequence[str]) -> list[str]:
    """The notes under the type table: how the importance matrix relates to `qt` with this `mode`
    ("compute" | "file" | "none"), then the dry run's own notes that matter for it."""
    advice = imatrix_advice(qt, mode != "none") or ""
    if mode == "compute" and qt.imatrix == "ignores":
        advice = f"{qt.name} ignores the importance matrix: the run skips computing one."
    if mode == "none" and qt.imatrix == "requires" and dry_notes:
        advice = ""  # llama.cpp's dry run says whether it can do without one: its note follows
    # The dry run ran without an imatrix: its notes on needing one only matter when none will be used.
    notes = [advice] + [w for w in dry_notes
                        if "fallback" in w or (mode == "none" and "requires an importance matrix" in w)]
    return [n for n in notes if n]


def token_summary(rep: TokenReport, records: int, variant: str, layout: str, held_out: int, limit: int) -> str:
    """One line on the calibration text (HTML, figures in bold) ending with the chunks the run will do (`limit`
    0: all of them, as the pane passes no limit then)."""
    held = f"; {held_out} held out" if held_out else ""
    runs = ChunkPlan(rep.tokens, rep.n_ctx, limit or None).n_chunks
    return (f"<b>{rep.tokens:,}</b> tokens from {records} records ({variant}, {layout} layout{held}) → "
            f"<b>{rep.n_chunks}</b> chunks of {rep.n_ctx}, <b>{rep.tokens_dropped:,}</b> tokens dropped at the "
            f"end; {runs} chunk(s) will run.")


def estimate_bytes(qt: QuantType, parameters: int) -> int:
    """The rough size: every weight at the type's bits per weight."""
    return int(parameters * qt.bpw / 8)


def size_note(qt: QuantType, parameters: int, dry_run_bytes: int | None) -> str:
    """Why llama.cpp's dry-run size is well above the ≈ estimate ("" when it is not)."""
    if dry_run_bytes is None or parameters <= 0 or qt.bpw >= 16:
        return ""
    est = estimate_bytes(qt, parameters)
    if dry_run_bytes < est * SIZE_NOTE_RATIO:
        return ""
    return (f"llama.cpp's dry run ({format_bytes(dry_run_bytes, rough=True)}) is above the ≈ estimate "
            f"({format_bytes(est, rough=True)}, {qt.bpw:g} bits × every weight): llama.cpp keeps the token "
            "embeddings and the output layer at a higher-precision type and norms in F32; with a large vocabulary "
            "that is a big share of a small model.")


def cancel_message(out: Path, computes_imatrix: bool, started_at: float) -> str:
    """What a cancelled run left: the importance matrix when it finished before the cancel, else nothing."""
    imx = imatrix_path_for(out)
    if computes_imatrix and imx.is_file() and imx.stat().st_mtime >= started_at - 1:
        return (f"Cancelled: the importance matrix was kept: {imx} (choose “Load a file” to quantize with it "
                "later). No quant was written; earlier files in the folder were not touched.")
    return "Cancelled: nothing from this run was left behind; earlier files in the folder were not touched."


def computes_imatrix(qt: QuantType, mode: str) -> bool:
    return mode == "compute" and qt.imatrix != "ignores"


def run_blocker(qt: QuantType, mode: str, *, has_records: bool, n_chunks: int | None, imatrix_file: str,
                refusal: str = "") -> str:
    """Why a run with these inputs cannot start ("" when it can). `n_chunks` is None until counted;
    `refusal` is llama.cpp's reason to refuse `qt` without an importance matrix ("" when it accepts it)."""
    if computes_imatrix(qt, mode):
        if not has_records:
            return "Load narratives in step 1 to compute the importance matrix from them."
        if not n_chunks:
            return "The calibration text must fill at least one chunk."
    if mode == "file" and not Path(imatrix_file.strip()).is_file():
        return "Choose an existing importance matrix file."
    if mode == "none" and refusal:
        return refusal
    return ""


def output_line(out: Path, qt: QuantType, mode: str) -> str:
    """What a run writes (HTML), and whether it replaces a file."""
    text = f"Writes <b>{out.name}</b> (+ .sha256, .manifest.json) in {out.parent}"
    if computes_imatrix(qt, mode):
        text += f", and {imatrix_path_for(out).name}"
    if out.exists():
        text += ". <i>It exists and will be replaced.</i>"
    return text


def run_needs(shape: ModelShape, out: Path, qt: QuantType, n_ctx: int, computes: bool,
              dry_run_bytes: int | None) -> Needs:
    """What the Run button's job needs: the importance matrix (when this run computes one) and the quantize run
    one after the other, so the larger memory of the two and the disk of both."""
    quant = quantize_needs(shape, out, qt.bpw, output_bytes=dry_run_bytes)
    if not computes:
        return quant
    im = imatrix_needs(shape, n_ctx, imatrix_path_for(out))
    both = Needs("the run", memory=max(im.memory, quant.memory), folder=quant.folder)
    both.memory_parts = im.memory_parts if im.memory >= quant.memory else quant.memory_parts
    for what, n in im.disk_parts + quant.disk_parts:
        both.add_disk(what, n)
    return both


def needs_line(needs: Needs) -> str:
    """The line next to the Run button: what the run needs against what is free."""
    text = describe_needs(needs)
    return f"This run {text}." if "too little" not in text else f"⚠ This run {text}: free some first."
