"""check_json_depth against the depth of the parsed value: it refuses exactly the JSON nested
deeper than MAX_DEPTH, whatever the strings hold (brackets, quotes, backslashes)."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tessera.core.documents import MAX_DEPTH, check_json_depth
from tessera.core.errors import InputError

# Strings made mostly of the characters the scan has to see through.
tricky_text = st.text(alphabet=st.sampled_from(list('[]{}"\\ab:,')), max_size=8)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), tricky_text)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(tricky_text, inner, max_size=3)), max_leaves=12)


def depth(value) -> int:
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


def wrapped(value, levels: int, rng: random.Random):
    """``value`` inside ``levels`` lists or objects, each with tricky siblings beside it."""
    for _ in range(levels):
        sibling = rng.choice(['"]}', "[{", '\\"[', 1, None, [], {"]": "{"}])
        if rng.random() < 0.5:
            value = [sibling, value] if rng.random() < 0.5 else [value, sibling]
        else:
            value = {rng.choice(['"[', "k", "}\\"]): sibling, rng.choice(["[x", "v", '"']) + "!": value}
    return value


def refused(data: bytes) -> bool:
    try:
        check_json_depth(data, "test.json")
    except InputError as exc:
        assert exc.message == f"test.json: nested deeper than {MAX_DEPTH} levels"
        return True
    return False


@settings(max_examples=200, deadline=None)
@given(values, st.integers(MAX_DEPTH - 5, MAX_DEPTH + 5), st.randoms(use_true_random=False), st.booleans())
def test_refuses_exactly_what_nests_too_deep(inner, levels, rng, indented):
    value = wrapped(inner, levels, rng)
    data = json.dumps(value, indent=4 if indented else None).encode()
    assert refused(data) == (depth(value) > MAX_DEPTH)


@pytest.mark.parametrize("levels, too_deep", [(MAX_DEPTH, False), (MAX_DEPTH + 1, True)])
def test_brackets_inside_strings_do_not_count(levels, too_deep):
    inner = {"s": "[[[[{{{{" * 100, "q": 'a \\" [ "', "e": "\\\\"}
    value = inner
    for _ in range(levels - 1):
        value = {"a": [value][0], "b": "]]]]}}}}" * 50}
    assert depth(value) == levels
    assert refused(json.dumps(value).encode()) == too_deep


def test_mismatched_brackets_are_left_to_the_parser():
    # not JSON (every "{" closed by "]"): the parser reports it, not the depth check
    assert not refused(b"{" * (MAX_DEPTH + 10) + b"]" * (MAX_DEPTH + 10))
