"""The data formats: json, jsonl, yaml, csv (rows) and cyphernetes (the Cyphernetes data map)."""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any, TextIO


def plain(value: Any) -> Any:
    """``value`` made JSON-native: datetimes as RFC 3339 text, sets and tuples as lists."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((plain(v) for v in value), key=repr)
    if isinstance(value, _dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, _dt.timedelta):
        return f"PT{value.total_seconds():g}S"
    return value


def _default(value: Any) -> Any:
    converted = plain(value)
    if converted is value:
        return str(value)
    return converted


def ordered_rows(result: Any) -> list[dict]:
    """Rows with keys in column order."""
    cols = result.columns
    return [{c: row.get(c) for c in cols} for row in result.rows]


def cell_text(value: Any) -> str:
    """A value as one table/csv cell: scalars as text, nested values as compact JSON, None as ''."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list, tuple, set)):
        return json.dumps(plain(value), separators=(",", ":"), ensure_ascii=False)
    return str(plain(value))


def write_jsonl(result: Any, out: TextIO) -> None:
    """One JSON object per row."""
    import orjson

    for row in ordered_rows(result):
        try:
            line = orjson.dumps(row, default=_default, option=orjson.OPT_UTC_Z).decode()
        except orjson.JSONEncodeError:  # nested past orjson's 254 levels (e.g. an event stored long ago)
            line = json.dumps(plain(row), ensure_ascii=False, separators=(",", ":"), default=_default)
        out.write(line + "\n")


def write_json(result: Any, out: TextIO) -> None:
    """A JSON array of row objects, indented."""
    out.write(json.dumps(ordered_rows(result), indent=2, ensure_ascii=False, default=_default) + "\n")


def write_yaml(result: Any, out: TextIO) -> None:
    """A YAML list of row mappings."""
    import yaml

    yaml.safe_dump(plain(ordered_rows(result)), out, sort_keys=False, allow_unicode=True, default_flow_style=False)


def write_csv(result: Any, out: TextIO) -> None:
    """A header line, then one line per row (nested values as compact JSON)."""
    import csv

    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(result.columns)
    for row in result.rows:
        writer.writerow([cell_text(row.get(c)) for c in result.columns])


def write_cyphernetes(result: Any, out: TextIO) -> None:
    """The Cyphernetes data map, indented as Cyphernetes prints it."""
    out.write(json.dumps(plain(result.cyphernetes), indent=2, ensure_ascii=False, default=_default) + "\n")
