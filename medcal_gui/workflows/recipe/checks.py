"""What a recipe checks before it makes anything: one finite target above zero, a work folder that is medcal's
own (or new, or empty) with no input in it, and a lower bound of the smallest file the types can make, so a far
too small target is refused before the first candidate."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from medcal_gui.core.errors import InputError, MedcalError, OutputError
from medcal_gui.core.ownership import is_marked
from medcal_gui.core.units import finite_float
from medcal_gui.workflows.preflight import check_count
from medcal_gui.workflows.recipe.candidates import WORK_KIND
from medcal_gui.workflows.recipe.layout import tensor_bytes


def check_work_folder(work: Path, inputs: Sequence[Path], outputs: Sequence[Path]) -> None:
    """The work folder beside the output is medcal's own (its marker), or does not exist yet, or is empty: its
    files are replaced and deleted by name, so a folder of the user's is never taken for it. No input may lie
    in it and no output be it."""
    if os.path.lexists(work) and (work.is_symlink() or not work.is_dir()):
        raise OutputError(f"The recipe's work folder {work} is {'a link' if work.is_symlink() else 'a file'}, not "
                          "a folder medcal made: move it away or write the recipe into another folder.")
    if work.is_dir() and not is_marked(work, WORK_KIND):
        held = sorted(os.listdir(work))
        if held:
            raise OutputError(f"The folder {work} holds files medcal did not mark as its own ({_names(held)}); "
                              "medcal replaces and deletes files in its recipe work folder, so it uses only one it "
                              "made itself. If an older medcal made it, delete it (its measurements are redone); "
                              "otherwise write the recipe into another folder.")
    root = work.resolve()
    for p in inputs:
        if Path(p).resolve().is_relative_to(root):
            raise OutputError(f"The input {p} lies in the recipe's work folder {work}, whose files medcal replaces "
                              "and deletes: move it out of there.")
    for p in outputs:
        if Path(p).resolve().is_relative_to(root):
            raise OutputError(f"The output {p} would be in the recipe's work folder {work}: choose another name.")


def _names(names: Sequence[str], limit: int = 5) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def file_id(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def smallest_tensor_bytes(base: Path, names: Sequence[str]) -> int | None:
    """A lower bound of the smallest file these types can make: every quantizable tensor at its smallest type
    (bytes depend on type and shape only). Lets a target far too small be refused before any candidate is
    made; None where the model's tensors cannot be listed (the exact check after measuring still applies)."""
    from medcal_gui.quantize.tensor_types import canonical_type, fallback_type, model_tensors, quantizable

    try:
        total = 0
        for m in model_tensors(base):
            if not quantizable(m.name, m.ne):
                continue
            shape = tuple(int(x) for x in m.ne)
            total += min(tensor_bytes(fallback_type(canonical_type(t), shape[0]).upper(), shape) for t in names)
        return total
    except (MedcalError, ValueError, KeyError):
        return None


def check_target(target_bytes: int | None, target_bpw: float | None) -> None:
    """Exactly one target, finite and above zero: no nan, inf or 1e400 bits per weight, no zero or negative
    size (the command line and the window meet the same check)."""
    from medcal_gui.core.units import MAX_SIZE

    if (target_bytes is None) == (target_bpw is None):
        raise InputError("Give the target as a size (--target-size) or in bits per weight (--target-bpw), one "
                         "of them.")
    if target_bpw is not None:
        finite_float(str(target_bpw), "--target-bpw")
        if not target_bpw > 0:
            raise InputError(f"--target-bpw: {target_bpw:g} must be above zero; write the bits per weight "
                             "the file may take, e.g. --target-bpw 4.5.")
    if target_bytes is not None:
        check_count(target_bytes, "--target-size (bytes)", high=MAX_SIZE)
