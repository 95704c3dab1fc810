"""Data contracts: one Great Expectations suite (JSON) per source in `data_contracts/`.

A suite is plain GX 1.x JSON. Its `meta` adds what GX has no words for: the column types the
import coerces to, the key, which columns marketers may segment on or put in templates, the
quarantine limit and the row-count band. Each expectation is either row level (its failing rows
are quarantined and the good rows load) or table level (the import stops); `meta.level` says
which, with a default by kind: column-map expectations are row level except uniqueness.
Suites may use the parameter `{"$PARAMETER": "run_end"}` (the end of the run date, UTC). "Not in
the future" is a column flag (`not_in_future: true`) checked vectorised: GX compares datetimes
one Python call per row, seconds per million rows.

Great Expectations is imported lazily: importing it costs seconds, and DAG parsing must not pay.
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from campaign_orchestrator.definitions.base import ID_RE
from campaign_orchestrator.definitions.rules import Vocabulary
from campaign_orchestrator.errors import CampaignError, InvalidInput

if TYPE_CHECKING:  # pandas costs half a second to import: `campaigns validate` never needs it
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
REPLACEMENT_CHAR = "\ufffd"
EVENT_FIXED_COLUMNS = {"customer_id", "name", "ts"}
RESERVED_EVENT_COLUMNS = {"import_date"}


class ContractError(CampaignError, InvalidInput, RuntimeError):
    """A table-level rule broke: the import stops and nothing downstream runs."""

    def __init__(self, source: str, file: str, rule: str, column: str | None, detail: str) -> None:
        self.source, self.file, self.rule, self.column, self.detail = source, file, rule, column, detail
        where = f"column {column!r}, " if column else ""
        super().__init__(f"data contract broken: source {source!r}, file {file}, {where}rule {rule}: {detail}")

    def __reduce__(self) -> tuple[Any, ...]:  # survives the trip back from a worker process
        return (ContractError, (self.source, self.file, self.rule, self.column, self.detail))


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: ColumnType
    required: bool = False
    segmentable: bool = True
    template: bool = False
    not_in_future: bool = False
    events: tuple[str, ...] = ()  # events contract: the event names that carry it (empty = all)


@dataclass(frozen=True)
class RowCountBand:
    """Accepted row count relative to the last accepted import of the same source."""

    min_ratio: float = 0.0
    max_ratio: float | None = None


@dataclass(frozen=True)
class KeyChurnBand:
    """For `replace` sources: how many of tonight's keys may be new, and of the last import's gone."""

    max_new_share: float = 1.0
    max_gone_share: float = 1.0


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
    row_count_band: RowCountBand | None
    key_churn: KeyChurnBand | None = None
    unknown_customers: Literal["quarantine", "count"] = "quarantine"  # child sources' rows of no customer

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
                not_in_future=bool(spec.get("not_in_future", False)),
                events=_event_names(path, name, spec.get("events")),
            )
        if not cols:
            raise ValueError(f"{path}: meta.columns is empty; a contract must declare its columns")
        if str(meta.get("source") or path.stem) == "events":
            _check_property_names(path, cols)
        band = meta.get("row_count_band")
        return cls(
            source=str(meta.get("source") or path.stem),
            suite_json=doc,
            columns=cols,
            key=list(meta.get("key") or []),
            max_quarantine_share=float(meta.get("max_quarantine_share", 0.05)),
            row_count_band=RowCountBand(float(band.get("min_ratio", 0.0)), band.get("max_ratio")) if band else None,
            key_churn=_key_churn(path, meta.get("key_churn")),
            unknown_customers=_unknown_customers(path, meta.get("unknown_customers", "quarantine")),
        )

    @cached_property
    def _validation(self) -> Any:
        """A GX validation definition built once per contract and reused for every chunk."""
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
        # GX logs every metric it registers at INFO (two hundred lines a task): keep its warnings only,
        # so a task's log shows the import's own lines.
        logging.getLogger("great_expectations").setLevel(logging.WARNING)
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
        if not header:
            raise ContractError(self.source, file, "file_not_empty", None, "the file is empty (no header, no rows)")
        missing = [c.name for c in self.columns.values() if c.required and c.name not in header]
        if not missing:
            return
        hint = ""
        if len(header) == 1:
            for sep in (";", "\t", "|"):
                if sep in header[0]:
                    hint = f"; the header looks {sep!r}-delimited (set delimiter in sources.yaml)"
        unknown = [h for h in header if h not in self.columns]
        if unknown and not hint:
            hint = f"; columns the contract does not know: {unknown[:10]} (renamed?)"
        raise ContractError(
            self.source,
            file,
            "required_columns",
            missing[0],
            f"{len(missing)} required column(s) missing: {missing}{hint}",
        )

    def coerce(
        self, raw: pd.DataFrame, max_lengths: dict[str, int], run_end: Any = None, file: str = "?"
    ) -> tuple[pd.DataFrame, dict[int, list[str]]]:
        """Typed columns from raw input; cells that do not parse or do not fit become row violations.
        An optional column the input does not have is all null, whatever its type."""
        import pandas as pd

        typed = pd.DataFrame(index=raw.index)
        broken: dict[int, list[str]] = defaultdict(list)
        for name, spec in self.columns.items():
            if name not in raw.columns:
                typed[name] = pd.Series(None, index=raw.index, dtype=_EMPTY_DTYPES[spec.type])
                continue
            try:
                values, present = _parse(raw[name], spec.type)
            except (TypeError, ValueError, OverflowError) as exc:  # a value no rule anticipated: say where
                raise ContractError(
                    self.source, file, "type", name, f"cannot read the column as {spec.type}: {type(exc).__name__}"
                ) from None
            bad = present & values.isna()
            for idx in bad[bad].index:
                broken[int(idx)].append(f"type({name}): expected {spec.type}")
            if spec.not_in_future and run_end is not None:
                future = values >= pd.Timestamp(run_end)
                for idx in future[future.fillna(False)].index:
                    broken[int(idx)].append(f"not_in_future({name})")
            if spec.type == "string":
                _check_text(values, name, max_lengths.get(name), broken)
            typed[name] = values
        return typed, broken

    def validate_chunk(
        self,
        raw: pd.DataFrame,
        file: str,
        parameters: dict[str, Any],
        max_lengths: dict[str, int],
        known_bad: dict[int, list[str]] | None = None,
    ) -> ChunkResult:
        """Split a chunk (index = 0-based data row number) into good rows and quarantined ones.

        `known_bad` carries what the reader already found wrong with a row (e.g. missing fields).
        """
        typed, broken = self.coerce(raw, max_lengths, parameters.get("run_end"), file)
        for idx, reasons in (known_bad or {}).items():
            broken[idx].extend(reasons)
        result = self._validation.run(
            batch_parameters={"dataframe": typed},
            expectation_parameters=parameters,
            result_format={"result_format": "COMPLETE"},
        )
        for res in result.results:
            config = res.expectation_config
            column = config.kwargs.get("column")
            label = f"{config.type}({column})" if column else config.type
            if res.exception_info and res.exception_info.get("raised_exception"):
                message = str(res.exception_info.get("exception_message"))[:300]
                raise ContractError(self.source, file, config.type, column, message)
            if res.success:
                continue
            level = (config.meta or {}).get("level")
            is_row = level == "row" or (
                level is None and column is not None and config.type not in TABLE_LEVEL_BY_DEFAULT
            )
            unexpected = res.result.get("unexpected_index_list")
            if not is_row or unexpected is None:
                count = res.result.get("unexpected_count", res.result.get("observed_value"))
                raise ContractError(self.source, file, config.type, column, f"failed ({count} rows){_some(res)}")
            for idx in unexpected:
                broken[int(idx)].append(label)
        if not broken:
            return ChunkResult(good=typed)
        bad_index = sorted(broken)
        raw_rows = raw.loc[bad_index].astype(object).where(raw.loc[bad_index].notna(), None)
        quarantined = [
            (idx, broken[idx], {str(k): (None if v is None else str(v)) for k, v in row.items()})
            for idx, row in zip(bad_index, raw_rows.to_dict("records"), strict=True)
        ]
        return ChunkResult(good=typed.drop(index=bad_index), quarantined=quarantined)


def _some(res: Any) -> str:
    """Up to 10 of the values a table-level rule found (the duplicates of a uniqueness rule)."""
    values = res.result.get("unexpected_list") or res.result.get("partial_unexpected_list") or []
    shown = sorted({str(v) for v in values})[:10]
    return f"; values: {', '.join(shown)}" if shown else ""


def _check_text(values: pd.Series, name: str, limit: int | None, broken: dict[int, list[str]]) -> None:
    """Text that did not decode as UTF-8, or is longer than the warehouse column."""
    text = values.astype("string")
    garbled = text.str.contains(REPLACEMENT_CHAR, regex=False, na=False)
    for idx in garbled[garbled].index:
        broken[int(idx)].append(f"encoding({name}): not valid UTF-8")
    if limit:
        long = text.str.len() > limit
        for idx in long[long.fillna(False)].index:
            broken[int(idx)].append(f"max_length({name}): over {limit} characters")


def _key_churn(path: Path, spec: Any) -> KeyChurnBand | None:
    if spec is None:
        return None
    if not isinstance(spec, dict) or set(spec) - {"max_new_share", "max_gone_share"}:
        raise ValueError(f"{path}: meta.key_churn: expected {{max_new_share: 0..1, max_gone_share: 0..1}}")
    shares = {k: float(v) for k, v in spec.items()}
    if any(not 0 <= v <= 1 for v in shares.values()):
        raise ValueError(f"{path}: meta.key_churn: shares are between 0 and 1")
    return KeyChurnBand(**shares)


def _unknown_customers(path: Path, value: Any) -> Literal["quarantine", "count"]:
    if value == "quarantine":
        return "quarantine"
    if value == "count":
        return "count"
    raise ValueError(f"{path}: meta.unknown_customers: 'quarantine' or 'count', got {value!r}")


def _event_names(path: Path, column: str, names: Any) -> tuple[str, ...]:
    if names is None:
        return ()
    if not isinstance(names, list) or not all(isinstance(n, str) and ID_RE.match(n) for n in names):
        raise ValueError(f"{path}: meta.columns.{column}.events: expected a list of event names")
    return tuple(names)


def _check_property_names(path: Path, cols: dict[str, ColumnSpec]) -> None:
    """Event properties become columns of `events`: a name must be a plain identifier of its own."""
    for name in cols:
        if name in EVENT_FIXED_COLUMNS:
            continue
        if name == "event_id" and cols[name].type != "string":
            raise ValueError(f"{path}: meta.columns.event_id: an event id is text (type: string)")
        if name in RESERVED_EVENT_COLUMNS or not ID_RE.match(name):
            raise ValueError(
                f"{path}: meta.columns.{name}: an event property is lower-case letters, digits and _, "
                f"and not one of {sorted(RESERVED_EVENT_COLUMNS)}"
            )


_EMPTY_DTYPES = {
    "string": "object",
    "int": "Int64",
    "float": "float64",
    "bool": "boolean",
    "date": "datetime64[ns]",
    "datetime": "datetime64[ns]",
}


def _parse(series: pd.Series, kind: str) -> tuple[pd.Series, pd.Series]:
    """(typed values, which cells had a value). Typed inputs (Parquet, SQL) skip the text path."""
    import pandas as pd

    if kind in ("int", "float") and pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        values = series.astype("float64")
        present = series.notna()
    elif kind in ("date", "datetime") and pd.api.types.is_datetime64_any_dtype(series):
        values = series.dt.tz_convert("UTC").dt.tz_localize(None) if series.dt.tz is not None else series
        present = series.notna()
    elif kind == "bool" and pd.api.types.is_bool_dtype(series):
        values, present = series.astype("boolean"), series.notna()
    else:
        text = series.astype("string").str.strip()
        text = text.mask(text == "")
        present = text.notna()
        values = _parse_text(text, kind)
    if kind == "int":
        integral = values.isna() | (values % 1 == 0)
        values = values.where(integral).astype("Int64")
    if kind == "date":
        values = values.dt.normalize()
    return values, present


def _parse_text(text: pd.Series, kind: str) -> pd.Series:
    import pandas as pd

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
    return parsed.dt.tz_localize(None)


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


def event_properties(contracts: dict[str, Contract]) -> dict[str, str]:
    """The properties the events contract declares (name -> type): columns of `events`."""
    event_contract = contracts.get("events")
    if event_contract is None:
        return {}
    return {c.name: c.type for c in event_contract.columns.values() if c.name not in EVENT_FIXED_COLUMNS}


def vocabulary(contracts: dict[str, Contract], lists: frozenset[str] | None = None) -> Any:
    """What segment rules may name, from the contracts: profile attributes, event properties."""
    event_contract = contracts.get("events")
    restricted = (
        {c.name: frozenset(c.events) for c in event_contract.columns.values() if c.events} if event_contract else {}
    )
    properties = {k: v for k, v in event_properties(contracts).items() if k != "event_id"}  # an id, not a fact
    return Vocabulary(
        attributes=segment_attributes(contracts),
        event_properties=properties,
        property_events=restricted,
        lists=lists,
    )


def template_variables(contracts: dict[str, Contract]) -> set[str]:
    customers = contracts.get("customers")
    if customers is None:
        return set()
    return {c.name for c in customers.columns.values() if c.template}


def template_samples(contracts: dict[str, Contract]) -> dict[str, Any]:
    """A plausible value per template variable, by type: what lint renders templates with."""
    import datetime as dt

    samples = {
        "string": "sample",
        "int": 42,
        "float": 1234.5,
        "bool": True,
        "date": dt.date(2026, 1, 15),
        "datetime": dt.datetime(2026, 1, 15, 18, 30),
    }
    customers = contracts.get("customers")
    if customers is None:
        return {}
    return {c.name: samples[c.type] for c in customers.columns.values() if c.template}
