"""The specification by example: every rule of `rule_examples` evaluated again, independently, in
pandas, from the rows the warehouse holds. No SQL of the engine runs here."""

from __future__ import annotations

from typing import Any

import pandas as pd
import sqlalchemy as sa

from campaign_orchestrator.warehouse.engine import hash32
from campaign_orchestrator.warehouse.event_properties import events_table
from campaign_orchestrator.warehouse.sqlfuncs import hash_bucket  # noqa: F401 - the reference below re-implements it
from campaign_orchestrator.warehouse.tables import app_installs, customers
from tests.campaign_orchestrator.segments.rule_examples import ATTRS, LIST, PROPS, T


class Ref:
    """The specification by example: every rule evaluated again, independently, in pandas."""

    def __init__(self, df: pd.DataFrame, ev: pd.DataFrame, apps: pd.DataFrame, lists: dict[str, list[str]]) -> None:
        self.df, self.ev, self.apps, self.lists = df, ev, apps, lists
        self.members: dict[str, set[str]] = {}
        self.stages: dict[str, dict[str, str]] = {}

    def ids(self, mask: pd.Series) -> set[str]:
        return set(self.df.loc[mask, "customer_id"])

    def __call__(self, rule: dict[str, Any]) -> pd.Series:
        df = self.df
        if "all" in rule:
            out = pd.Series(True, index=df.index)
            for child in rule["all"]:
                out &= self(child)
            return out
        if "any" in rule:
            out = pd.Series(False, index=df.index)
            for child in rule["any"]:
                out |= self(child)
            return out
        if "not" in rule:
            return ~self(rule["not"])
        if "segment" in rule:
            return df["customer_id"].isin(self.members[rule["segment"]])
        if "in_list" in rule:
            return df["customer_id"].isin(self.lists.get(rule["in_list"], []))
        if "app" in rule:
            spec, apps = rule["app"], self.apps
            keep = pd.Series(True, index=apps.index)
            if "platform" in spec:
                keep &= apps["platform"].isin(
                    spec["platform"] if isinstance(spec["platform"], list) else [spec["platform"]]
                )
            if "push_token" in spec:
                keep &= apps["push_token_present"] == spec["push_token"]
            return df["customer_id"].isin(apps.loc[keep, "customer_id"])
        if "bucket" in rule:
            spec = rule["bucket"]
            buckets = spec.get("buckets", 100)
            b = df["customer_id"].map(lambda c: hash32(f"bucket:{spec['salt']}:{c}") % buckets)
            if "lt" in spec:
                return b < spec["lt"]
            if "gte" in spec:
                return b >= spec["gte"]
            return b.isin(spec["in"]) if "in" in spec else b.between(*spec["between"])
        if "stage" in rule:
            spec = rule["stage"]
            op = next(k for k in spec if k != "lifecycle")
            wanted = spec[op] if isinstance(spec[op], list) else [spec[op]]
            stage = df["customer_id"].map(self.stages[spec["lifecycle"]])
            hit = stage.isin(wanted)
            return ~hit if op in ("not_in", "ne") else hit
        if "event" in rule:
            return self.event(rule)
        return self.condition(
            df[rule["attribute"]], ATTRS[rule["attribute"]], *next((k, v) for k, v in rule.items() if k != "attribute")
        )

    def moment(self, value: Any, kind: str) -> pd.Timestamp:
        if isinstance(value, str) and value[-1] in "hdw" and value[:-1].isdigit():
            when = pd.Timestamp(T) - pd.Timedelta(int(value[:-1]), unit={"h": "h", "d": "D", "w": "W"}[value[-1]])
            return when.normalize() if kind == "date" else when
        return pd.Timestamp(value)

    def condition(self, col: pd.Series, kind: str, op: str, value: Any) -> pd.Series:
        present = col.notna()
        if kind in ("date", "datetime") and op not in ("exists", "is_null", "within_last", "more_than_ago"):
            value = [self.moment(v, kind) for v in value] if isinstance(value, list) else self.moment(value, kind)
        match op:
            case "eq":
                return present & (col == value)
            case "ne":
                return ~present | (col != value)
            case "gt" | "after":
                return present & (col > value)
            case "gte":
                return present & (col >= value)
            case "lt" | "before":
                return present & (col < value)
            case "lte":
                return present & (col <= value)
            case "in":
                return present & col.isin(value)
            case "not_in":
                return ~present | ~col.isin(value)
            case "between":
                return present & (col >= value[0]) & (col <= value[1])
            case "exists":
                return present
            case "is_null":
                return ~present
            case "contains":
                return present & col.fillna("").str.lower().str.contains(value.lower(), regex=False)
            case "starts_with":
                return present & col.fillna("").str.lower().str.startswith(value.lower())
            case "within_last":
                return present & (col >= self.moment(value, kind))
            case "more_than_ago":
                return present & (col < self.moment(value, kind))
            case "on":
                return present & (col.dt.normalize() == value.normalize())
        raise AssertionError(op)

    def event(self, rule: dict[str, Any]) -> pd.Series:
        ev = self.ev[self.ev["name"] == rule["event"]]
        if "within_last" in rule:
            ev = ev[ev["ts"] >= self.moment(rule["within_last"], "datetime")]
        if "more_than_ago" in rule:
            ev = ev[ev["ts"] < self.moment(rule["more_than_ago"], "datetime")]
        if "between" in rule:
            low, high = (self.moment(v, "datetime") for v in rule["between"])
            ev = ev[(ev["ts"] >= low) & (ev["ts"] <= high)]
        for cond in rule.get("where", []):
            op = next(k for k in cond if k != "property")
            ev = ev[self.condition(ev[cond["property"]], PROPS[cond["property"]], op, cond[op])]
        ids = self.df["customer_id"]
        for key in ("first", "last"):
            if key in rule:
                ((side, when),) = rule[key].items()
                edge = ev.groupby("customer_id")["ts"].agg("min" if key == "first" else "max")
                if side == "between":
                    low, high = (self.moment(v, "datetime") for v in when)
                    return ids.isin(edge[(edge >= low) & (edge <= high)].index)
                moment = self.moment(when, "datetime")
                return ids.isin(edge[edge < moment].index if side == "before" else edge[edge > moment].index)
        for key in ("first_value", "last_value"):
            if key in rule:
                spec = rule[key]
                prop, (op, value) = spec["property"], next((k, v) for k, v in spec.items() if k != "property")
                edge = ev.groupby("customer_id")["ts"].transform("min" if key == "first_value" else "max")
                on_edge = ev[ev["ts"] == edge]
                column = on_edge[prop].astype(float) if PROPS[prop] == "bool" else on_edge[prop]
                values = column.groupby(on_edge["customer_id"]).max()  # a tied moment: the greatest value
                if PROPS[prop] == "bool":
                    values = values.map(lambda v: None if pd.isna(v) else bool(v)).astype(object)
                ok = values[self.condition(values, PROPS[prop], op, value)].index
                return ids.isin(ok)
        for key in ("min", "max"):
            if key in rule:
                spec = rule[key]
                op, value = next((k, v) for k, v in spec.items() if k != "property")
                measure = ev.groupby("customer_id")[spec["property"]].agg(key).reindex(ids)
                if op == "between":
                    hit = (measure >= value[0]) & (measure <= value[1])
                else:
                    hit = {"eq": measure.eq, "gte": measure.ge, "lte": measure.le, "gt": measure.gt, "lt": measure.lt}[
                        op
                    ](value)
                return pd.Series(hit.fillna(False).to_numpy(dtype=bool), index=ids.index)
        if "distinct" in rule:
            spec = rule["distinct"]
            measure = ev.groupby("customer_id")[spec["property"]].nunique().reindex(ids).fillna(0)
            op = next(k for k in spec if k != "property")
            return pd.Series(self.condition(measure, "float", op, spec[op]).to_numpy(), index=ids.index)
        if "sum" in rule:
            spec = rule["sum"]
            measure = ev.groupby("customer_id")[spec["property"]].sum().reindex(ids).fillna(0)
            op = next(k for k in spec if k != "property")
            return pd.Series(self.condition(measure, "float", op, spec[op]).to_numpy(), index=ids.index)
        counts = ev.groupby("customer_id").size().reindex(ids).fillna(0)
        op, value = next(iter(rule.get("count", {"gte": 1}).items()))
        return pd.Series(self.condition(counts, "float", op, value).to_numpy(), index=ids.index)


def reference(engine) -> Ref:
    with engine.connect() as conn:
        df = pd.DataFrame(conn.execute(sa.select(customers)).mappings().all())
        ev = pd.DataFrame(conn.execute(sa.select(events_table(PROPS))).mappings().all())
        apps = pd.DataFrame(conn.execute(sa.select(app_installs)).mappings().all())
    for col in ("signup_date", "last_purchase_at"):
        df[col] = pd.to_datetime(df[col])
    ev["ts"] = pd.to_datetime(ev["ts"])
    ev["amount"] = ev["amount"].astype(float)
    ev["items"] = ev["items"].astype("Int64")
    ev["gift"] = ev["gift"].map(lambda v: None if v is None or pd.isna(v) else bool(v)).astype(object)
    apps["push_token_present"] = apps["push_token_present"].astype(bool)
    return Ref(df, ev, apps, LIST)
