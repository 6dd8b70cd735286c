"""lzq.amqp encode/decode: a message is {"id": int, "token": str} or a non-empty list of those;
anything else is ValueError."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lzq.amqp import decode, encode, queue_for


def test_encode_makes_compact_json_with_id_and_token() -> None:
    assert encode([(42, "tok")]) == b'{"id":42,"token":"tok"}'
    assert encode([(1, "a"), (2, "b")]) == b'[{"id":1,"token":"a"},{"id":2,"token":"b"}]'


@given(
    dispatches=st.lists(
        st.tuples(st.integers(min_value=1, max_value=2**63 - 1), st.text()), min_size=1, max_size=5
    )
)
def test_decode_inverts_encode(dispatches: list[tuple[int, str]]) -> None:
    assert decode(encode(dispatches)) == dispatches


def test_decode_ignores_extra_keys() -> None:
    assert decode(b'{"id": 1, "token": "t", "v": 2}') == [(1, "t")]
    assert decode(b'[{"id": 1, "token": "t", "v": 2}]') == [(1, "t")]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b'{"id": "1", "token": "t"}',
        b'{"id": 1.5, "token": "t"}',
        b'{"id": 1, "token": 2}',
        b'{"id": 1, "token": null}',
        b"{}",
        b'{"token": "t"}',
        b"[1, 2]",
        b"[]",
        b'[{"id": 1, "token": "t"}, {"id": 2}]',  # one bad element spoils the message
        b'[[{"id": 1, "token": "t"}]]',
        b'"text"',
        b"null",
        b'{"id": true, "token": "t"}',  # bool is an int subclass, but not an id
    ],
)
def test_decode_rejects_malformed_bodies_with_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        decode(body)


def test_body_is_valid_json_for_other_consumers() -> None:
    assert json.loads(encode([(7, "abc")])) == {"id": 7, "token": "abc"}


def test_queue_for_prefixes_the_lzq_queue_name() -> None:
    assert queue_for("lzq", "emails") == "lzq.emails"
