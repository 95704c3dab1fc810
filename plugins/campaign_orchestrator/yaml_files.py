"""Reading the marketers' YAML files so that every problem names its file, line or path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError


def read_yaml(path: Path, problems: list[str]) -> Any:
    """The document, or None with the reason (file, line) appended to `problems`."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "?"
        problems.append(f"{path}: {where}: not valid YAML ({getattr(exc, 'problem', exc)})")
    except OSError as exc:
        problems.append(f"{path}: cannot read ({exc.strerror})")
    return None


def pydantic_problems(path: Path | str, prefix: str, exc: ValidationError) -> list[str]:
    """'file: path.in.file: message' for each error of a model validation."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        out.append(f"{path}: {loc}: {err['msg']}")
    return out
