"""One check of a marketing folder, the very one `campaigns validate` runs (it calls this).

The loader (shapes, references, rules against the contracts' vocabulary, drafts) and then the
templates' lint; every problem is a 'file: path: reason (line N)' line. The contracts are read
once per checker (about a second), so the console can check a folder on every save.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from campaign_orchestrator.definitions.loader import DefinitionError, Definitions, load_definitions


@dataclass(frozen=True)
class FolderCheck:
    definitions: Definitions | None
    problems: list[str] = field(default_factory=list)
    # "definitions" (the loader refused the folder) or "templates" (it loaded; lint found problems)
    stage: str = "definitions"

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def message(self) -> str:
        """What `campaigns validate` prints for this folder."""
        if self.ok and self.definitions is not None:
            d = self.definitions
            return f"ok: {len(d.segments)} segments, {len(d.campaigns)} campaigns, {len(d.templates)} templates"
        return f"{len(self.problems)} problem(s) in the {self.stage}:\n" + "\n".join(self.problems)

    def problems_in(self, file: str | Path) -> list[str]:
        """The problems reported for one file (each problem starts with its file)."""
        prefix = f"{file}:"
        return [p for p in self.problems if p.startswith(prefix)]


class Checker:
    """`check(folder)` as `campaigns validate --config folder --contracts contracts_dir` would."""

    def __init__(self, contracts_dir: Path) -> None:
        self.contracts_dir = contracts_dir
        self._loaded: tuple[Any, set[str], dict[str, Any]] | None = None

    def _contracts(self) -> tuple[Any, set[str], dict[str, Any]]:
        if self._loaded is None:
            from campaign_orchestrator.ingest.contracts import (
                load_contracts,
                template_samples,
                template_variables,
                vocabulary,
            )
            from campaign_orchestrator.ingest.sources import load_sources_config

            contracts = load_contracts(self.contracts_dir)
            lists = frozenset(load_sources_config(self.contracts_dir / "sources.yaml").lists)
            self._loaded = (vocabulary(contracts, lists), template_variables(contracts), template_samples(contracts))
        return self._loaded

    def vocabulary(self) -> Any:
        """What rules may name (the contracts' attributes and event properties, lists, ...)."""
        return self._contracts()[0]

    def template_variables(self) -> set[str]:
        """The customer columns a template may name (the contracts' template variables)."""
        return set(self._contracts()[1])

    def check(self, config_dir: Path) -> FolderCheck:
        from campaign_orchestrator.render.lint import lint_templates

        vocab, variables, samples = self._contracts()
        try:
            defs = load_definitions(config_dir, vocab)
        except DefinitionError as exc:
            return FolderCheck(None, list(exc.problems), "definitions")
        return FolderCheck(defs, lint_templates(defs, variables, samples), "templates")
