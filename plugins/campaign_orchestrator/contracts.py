"""Data contracts: one Great Expectations suite (JSON) per source in `data_contracts/`.

A suite is plain GX 1.x JSON. Its `meta` adds what GX has no words for: the column types the
import coerces to, the key, which columns marketers may segment on or put in templates, and
the quarantine limit. Each expectation is either row level (its failing rows are quarantined
and the good rows load) or table level (the import stops); `meta.level` says which, with a
default by kind: column-map expectations are row level except uniqueness.

Great Expectations is imported lazily: importing it costs seconds, and DAG parsing must not pay.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import pandas as pd

ColumnType = Literal["string", "int", "float", "bool", "date", "datetime"]
COLUMN_TYPES: tuple[str, ...] = ("string", "int", "float", "bool", "date", "datetime")
TABLE_LEVEL_BY_DEFAULT = {
    "expect_column_values_to_be_unique",
    "expect_compound_columns_to_be_unique",
    "expect_select_column_values_to_be_unique_within_record",
}
_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n"}


class ContractError(RuntimeError):
    """A table-level rule broke: the import of this source stops and nothing downstream runs."""

    def __init__(self, source: str, file: str, rule: str, column: str | None, detail: str) -> None:
        self.source, self.file, self.rule, self.column, self.detail = source, file, rule, column, detail
        where = f"column {column!r}, " if column else ""
        super().__init__(f"data contract broken: source {source!r}, file {file}, {where}rule {rule}: {detail}")


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: ColumnType
    required: bool = False
    segmentable: bool = True
    template: bool = False


@dataclass
class ChunkResult:
    good: pd.DataFrame
    quarantined: list[tuple[int, list[str], dict[str, Any]]] = field(default_factory=list)


@dataclass
class Contract:
    source: str
    suite_json: dict[str, Any]
    columns: dict[str, ColumnSpec]
    key: list[str]
    max_quarantine_share: float

    @classmethod
    def load(cls, path: Path) -> Contract:
        doc = json.loads(path.read_text(encoding="utf-8"))
        meta = doc.get("meta") or {}
        cols: dict[str, ColumnSpec] = {}
        for name, spec in (meta.get("columns") or {}).items():
            kind = spec.get("type")
            if kind not in COLUMN_TYPES:
                raise ValueError(f"{path}: meta.columns.{name}.type: expected one of {COLUMN_TYPES}, got {kind!r}")
            cols[name] = ColumnSpec(
                name=name,
                type=kind,
                required=bool(spec.get("required", False)),
                segmentable=bool(spec.get("segmentable", True)),
                template=bool(spec.get("template", False)),
            )
        if not cols:
            raise ValueError(f"{path}: meta.columns is empty; a contract must declare its columns")
        return cls(
            source=str(meta.get("source") or path.stem),
            suite_json=doc,
            columns=cols,
            key=list(meta.get("key") or []),
            max_quarantine_share=float(meta.get("max_quarantine_share", 0.05)),
        )

    @cached_property
    def _validation(self) -> Any:
        """A GX validation definition built once per contract and reused for every chunk."""
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        asset = context.data_sources.add_pandas(f"src_{self.source}").add_dataframe_asset(self.source)
        batch = asset.add_batch_definition_whole_dataframe("chunk")
        suite_doc = {k: v for k, v in self.suite_json.items() if k in ("name", "expectations", "meta")}
        suite = context.suites.add(gx.ExpectationSuite(**suite_doc))
        return context.validation_definitions.add(
            gx.ValidationDefinition(name=f"contract_{self.source}", data=batch, suite=suite)
        )

    def check_header(self, header: list[str], file: str) -> None:
        missing = [c.name for c in self.columns.values() if c.required and c.name not in header]
        if missing:
            raise ContractError(
                self.source,
                file,
                "required_columns",
                missing[0],
                f"{len(missing)} required column(s) missing: {missing}; the file has {header}",
            )

    def coerce(self, raw: pd.DataFrame) -> tuple[pd.DataFrame, dict[int, list[str]]]:
        """Typed columns from raw text; cells that do not parse become violations of `type`."""
        typed = pd.DataFrame(index=raw.index)
        broken: dict[int, list[str]] = defaultdict(list)
        for name, spec in self.columns.items():
            if name not in raw.columns:
                typed[name] = None
                continue
            text = raw[name].astype("string").str.strip()
            text = text.mask(text == "")
            values = _parse(text, spec.type)
            bad = text.notna() & values.isna()
            for idx in bad[bad].index:
                broken[int(idx)].append(f"type({name}): expected {spec.type}")
            typed[name] = values
        return typed, broken

    def validate_chunk(self, raw: pd.DataFrame, file: str) -> ChunkResult:
        """Split a chunk (index = 0-based row number in the file) into good rows and quarantined ones."""
        typed, broken = self.coerce(raw)
        result = self._validation.run(
            batch_parameters={"dataframe": typed}, result_format={"result_format": "COMPLETE"}
        )
        for res in result.results:
            config = res.expectation_config
            column = config.kwargs.get("column")
            label = f"{config.type}({column})" if column else config.type
            if res.exception_info and res.exception_info.get("raised_exception"):
                raise ContractError(
                    self.source, file, config.type, column, str(res.exception_info.get("exception_message"))
                )
            if res.success:
                continue
            level = (config.meta or {}).get("level")
            is_row = level == "row" or (
                level is None and column is not None and config.type not in TABLE_LEVEL_BY_DEFAULT
            )
            unexpected = res.result.get("unexpected_index_list")
            if not is_row or unexpected is None:
                count = res.result.get("unexpected_count", res.result.get("observed_value"))
                raise ContractError(self.source, file, config.type, column, f"failed (observed {count})")
            for idx in unexpected:
                broken[int(idx)].append(label)
        if not broken:
            return ChunkResult(good=typed)
        bad_index = sorted(broken)
        quarantined = [
            (idx, broken[idx], {k: (None if pd.isna(v) else str(v)) for k, v in raw.loc[idx].items()})
            for idx in bad_index
        ]
        return ChunkResult(good=typed.drop(index=bad_index), quarantined=quarantined)


def _parse(text: pd.Series, kind: str) -> pd.Series:
    if kind == "string":
        return text.astype(object).where(text.notna(), None)
    if kind in ("int", "float"):
        return pd.to_numeric(text, errors="coerce").astype("float64")
    if kind == "bool":
        lowered = text.str.lower()
        out = pd.Series(pd.NA, index=text.index, dtype="boolean")
        out[lowered.isin(_TRUE)] = True
        out[lowered.isin(_FALSE)] = False
        return out
    parsed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    parsed = parsed.dt.tz_localize(None)
    if kind == "date":
        return parsed.dt.normalize()
    return parsed


def load_contracts(folder: str | Path) -> dict[str, Contract]:
    contracts: dict[str, Contract] = {}
    for path in sorted(Path(folder).glob("*.json")):
        contract = Contract.load(path)
        contracts[contract.source] = contract
    return contracts


def segment_attributes(contracts: dict[str, Contract]) -> dict[str, str]:
    """Profile columns marketers may name in segment rules, with their types."""
    customers = contracts.get("customers")
    if customers is None:
        return {}
    return {c.name: c.type for c in customers.columns.values() if c.segmentable}


def template_variables(contracts: dict[str, Contract]) -> set[str]:
    customers = contracts.get("customers")
    if customers is None:
        return set()
    return {c.name for c in customers.columns.values() if c.template}
