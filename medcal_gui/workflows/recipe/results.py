"""What a recipe run gives: the chosen type per tensor, the predicted and written sizes, the errors and the
measured KLD. Here, on its own, so the workflow (`recipe`) and its report (`recipe_report`) import it without
importing each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medcal_gui.workflows.recipe.probes import ProbeFit


@dataclass
class RecipeResult:
    model: Path
    out: Path
    recipe_file: Path
    budget: int
    predicted_bytes: int
    bytes: int
    bpw: float
    parameters: int
    file_type: str
    sha256: str
    choice: dict[str, str]  # tensor -> ggml type
    tensors: list[dict[str, Any]]  # per quantizable tensor: name, type, bytes, error, weight, class, layer
    weighted_error: float
    bound: float
    optimal: bool
    predicted_kld: float | None
    kld: dict[str, Any] | None  # measured on the held-out text
    probes: ProbeFit | None
    stock: list[dict[str, Any]] = field(default_factory=list)  # stock types near this size
    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    rebuild_command: str = ""

    def to_json(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "probes"}
        for k in ("model", "out", "recipe_file"):
            d[k] = str(d[k])
        d["probes"] = self.probes.to_json() if self.probes else None
        return d
