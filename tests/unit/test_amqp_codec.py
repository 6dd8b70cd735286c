"""lzq.amqp encode/decode: a message is exactly {"id": int, "token": str}; anything else is ValueError."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lzq.amqp import decode, encode, queue_for


def test_encode_makes_compact_json_with_id_and_token() -> None:
    assert encode(42, "tok") == b'{"id":42,"token":"tok"}'


@given(job_id=st.integers(min_value=1, max_value=2**63 - 1), token=st.text())
def test_decode_inverts_encode(job_id: int, token: str) -> None:
    assert decode(encode(job_id, token)) == (job_id, token)


def test_decode_ignores_extra_keys() -> None:
    assert decode(b'{"id": 1, "token": "t", "v": 2}') == (1, "t")


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
        b'"text"',
        b"null",
        b'{"id": true, "token": "t"}',  # bool is an int subclass, but not an id
    ],
)
def test_decode_rejects_malformed_bodies_with_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        decode(body)


def test_body_is_valid_json_for_other_consumers() -> None:
    assert json.loads(encode(7, "abc")) == {"id": 7, "token": "abc"}


def test_queue_for_prefixes_the_lzq_queue_name() -> None:
    assert queue_for("lzq", "emails") == "lzq.emails"
