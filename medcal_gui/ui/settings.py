"""Typed access to the GUI's QSettings ("medcal"), so panes never handle QVariant quirks themselves.

QSettings in INI format hands back strings for booleans and a bare string for a one-item list; the getters
here fix that. Panes add their own keys through `get_*`/`set_*` (namespaced, e.g. "quantize/type") or a
named property below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

ORG = "medcal"
APP = "medcal"
MAX_RECENT = 10


def _qsettings() -> QSettings:
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORG, APP)


class Settings:
    def __init__(self, qsettings: QSettings | None = None) -> None:
        self.q = qsettings or _qsettings()

    # -- typed primitives ---------------------------------------------------------------------------------
    def get_str(self, key: str, default: str = "") -> str:
        v = self.q.value(key, default)
        return default if v is None else str(v)

    def get_int(self, key: str, default: int = 0) -> int:
        try:
            return int(self.q.value(key, default))
        except (TypeError, ValueError):
            return default

    def get_float(self, key: str, default: float = 0.0) -> float:
        try:
            return float(self.q.value(key, default))
        except (TypeError, ValueError):
            return default

    def get_bool(self, key: str, default: bool = False) -> bool:
        v = self.q.value(key, default)
        if isinstance(v, str):
            return v.strip().lower() in ("1", "true", "yes", "on")
        return bool(v)

    def get_list(self, key: str) -> list[str]:
        v = self.q.value(key, [])
        if v is None or v == "":
            return []
        if isinstance(v, str):
            return [v]
        return [str(x) for x in v]

    def get_bytes(self, key: str) -> QByteArray | None:
        v = self.q.value(key)
        return v if isinstance(v, QByteArray) and not v.isEmpty() else None

    def set(self, key: str, value: Any) -> None:
        self.q.setValue(key, value)

    def remove(self, key: str) -> None:
        self.q.remove(key)

    def sync(self) -> None:
        self.q.sync()

    # -- the window ---------------------------------------------------------------------------------------
    @property
    def geometry(self) -> QByteArray | None:
        return self.get_bytes("window/geometry")

    @geometry.setter
    def geometry(self, value: QByteArray) -> None:
        self.set("window/geometry", value)

    @property
    def window_state(self) -> QByteArray | None:
        return self.get_bytes("window/state")

    @window_state.setter
    def window_state(self, value: QByteArray) -> None:
        self.set("window/state", value)

    # -- inputs -------------------------------------------------------------------------------------------
    @property
    def recent_files(self) -> list[str]:
        return self.get_list("inputs/recent")

    def add_recent(self, paths: list[Path | str]) -> list[str]:
        recent = self.recent_files
        for p in reversed([str(x) for x in paths]):
            if p in recent:
                recent.remove(p)
            recent.insert(0, p)
        recent = recent[:MAX_RECENT]
        self.set("inputs/recent", recent)
        return recent

    def clear_recent(self) -> None:
        self.set("inputs/recent", [])

    # -- format pane --------------------------------------------------------------------------------------
    @property
    def variant(self) -> str:
        return self.get_str("format/variant", "")

    @variant.setter
    def variant(self, name: str) -> None:
        self.set("format/variant", name)

    @property
    def layout(self) -> str:
        return self.get_str("format/layout", "")

    @layout.setter
    def layout(self, name: str) -> None:
        self.set("format/layout", name)

    # -- for panes 3-4 (quantize, verify & chat) ----------------------------------------------------------
    @property
    def model_path(self) -> str:
        return self.get_str("model/path", "")

    @model_path.setter
    def model_path(self, path: str) -> None:
        self.set("model/path", str(path))

    @property
    def quant_type(self) -> str:
        return self.get_str("quantize/type", "")

    @quant_type.setter
    def quant_type(self, name: str) -> None:
        self.set("quantize/type", name)

    @property
    def threads(self) -> int:
        return self.get_int("engine/threads", 0)  # 0: let the engine choose

    @threads.setter
    def threads(self, n: int) -> None:
        self.set("engine/threads", int(n))

    def chat(self, key: str, default: float | int | str) -> Any:
        """Chat settings ("temperature", "top_p", "max_tokens", "system_prompt", ...) typed by the default."""
        full = f"chat/{key}"
        if isinstance(default, bool):
            return self.get_bool(full, default)
        if isinstance(default, int):
            return self.get_int(full, default)
        if isinstance(default, float):
            return self.get_float(full, default)
        return self.get_str(full, default)

    def set_chat(self, key: str, value: float | int | str) -> None:
        self.set(f"chat/{key}", value)
