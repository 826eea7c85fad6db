"""Kubernetes quantities (``250m``, ``1.5``, ``128Mi``, ``2G``) for SUM and comparisons.

SUM over CPU-like values answers in millicores (``"750m"``) and over memory-like values in the
largest binary unit that keeps an integer (``"384Mi"``), the way people write them in manifests.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable

from tessera.core.errors import QueryError

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
            "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9), "T": Decimal(10**12),
            "P": Decimal(10**15), "E": Decimal(10**18)}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")


def parse_quantity(text: str) -> tuple[Decimal, str] | None:
    """``"250m"`` -> (Decimal("0.25"), "m"); None when the text is not a quantity."""
    m = _QUANTITY.match(text.strip())
    if not m:
        return None
    try:
        number = Decimal(m.group(1))
    except InvalidOperation:
        return None
    suffix = m.group(2) or ""
    factor = _BINARY.get(suffix) or _DECIMAL[suffix]
    return number * factor, suffix


def _format_cpu(total: Decimal) -> str:
    milli = total * 1000
    if milli == milli.to_integral_value():
        return f"{int(milli)}m"
    return f"{total.normalize()}"


def _format_bytes(total: Decimal) -> str:
    if total != total.to_integral_value():
        return str(total.normalize())
    value = int(total)
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = _BINARY[suffix]
        if value and value % unit == 0:
            return f"{value // unit}{suffix}"
    return str(value)


def sum_values(values: Iterable[Any]) -> Any:
    """Add numbers, or quantities given as strings; None values are skipped.

    Returns:
        a number for numbers only; ``"750m"`` for CPU-like quantities (no suffix or decimal SI
        suffixes below 1, mixed with numbers); ``"384Mi"`` for memory-like ones (binary or
        k/M/G... suffixes); 0 for no values.
    Raises:
        QueryError naming the first value that is neither a number nor a quantity.
    """
    total: Decimal | int | float = 0
    quantity_total = Decimal(0)
    saw_quantity = False
    memory_like = False
    for value in values:
        if value is None:
            continue
        if isinstance(value, bool):
            raise QueryError(f"SUM: cannot add boolean {value!r}")
        if isinstance(value, (int, float)):
            total += value
            continue
        if isinstance(value, str):
            parsed = parse_quantity(value)
            if parsed is not None:
                number, suffix = parsed
                saw_quantity = True
                quantity_total += number
                if suffix in _BINARY or suffix in ("k", "M", "G", "T", "P", "E"):
                    memory_like = True
                continue
        raise QueryError(
            f"SUM: cannot add {value!r}",
            hint="SUM takes numbers or Kubernetes quantities such as 250m or 128Mi",
        )
    if not saw_quantity:
        return total
    quantity_total += Decimal(str(total))
    return _format_bytes(quantity_total) if memory_like else _format_cpu(quantity_total)
