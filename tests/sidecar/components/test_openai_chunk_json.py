"""A streamed chunk's JSON is read with the C scanner called directly (``openai_kit._loads``): for
any text it must give what ``json.loads`` gives, or fail as it fails (a ``ValueError``, which the
kit turns into "malformed event")."""

from __future__ import annotations

import json

import pytest

from parley_sidecar.components import openai_kit

TEXTS = ['{"choices":[{"index":0,"delta":{"content":" hi"}}]}', ' {"a":1}', '{"a":1} ', '{"a":1}\n', '\ufeff{"a":1}',
         '{"a":1}{"b":2}', '{"a":1} x', '', ' ', '[1,2]', '"s"', '3', 'NaN', '-Infinity', 'null', '{"a":}', '{"a"',
         '{"a":"\\ud800"}', '{"a":1,"a":2}', '{"é":"中😀"}', 'x', '{"a":[1,{"b":null}],"c":true}', '\t[]\r\n']


@pytest.mark.parametrize("text", TEXTS)
def test_the_same_value_or_the_same_failure_as_json_loads(text: str) -> None:
    try:
        expected = json.loads(text)
    except ValueError as exc:
        with pytest.raises(type(exc)):
            openai_kit._loads(text)
        return
    got = openai_kit._loads(text)
    assert json.dumps(got) == json.dumps(expected)  # (NaN, which is not equal to itself, included)
    assert type(got) is type(expected)
