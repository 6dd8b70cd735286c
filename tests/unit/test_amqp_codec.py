"""lzq.amqp encode_jobs/decode_jobs: a message is a non-empty JSON list of jobs, each a list of
amqp.JOB_FIELDS (as PostgreSQL's json_build_array writes it); anything else is ValueError."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lzq.amqp import decode_jobs, encode_jobs, queue_for

jobs = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=2**63 - 1),  # id
        st.uuids().map(str),  # token
        st.text(min_size=1),  # job_name
        st.dictionaries(st.text(), st.integers() | st.text() | st.none()),  # params
        st.text(min_size=1),  # queue_name
        st.integers(min_value=-20, max_value=20),  # priority
        st.text() | st.none(),  # fairness_key
        st.integers(min_value=1),  # max_failures
        st.integers(min_value=1),  # attempt
    ),
    min_size=1,
    max_size=5,
)


@given(jobs=jobs)
def test_decode_inverts_encode_of_jobs_encoded_one_by_one(jobs: list[tuple]) -> None:
    assert decode_jobs(encode_jobs([json.dumps(list(job)).encode() for job in jobs])) == jobs


GOOD = [1, "tok", "job", {}, "default", 0, None, 3, 1]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b"{}",
        b'"text"',
        b"null",
        json.dumps(GOOD).encode(),  # a job, not a list of them
        json.dumps([GOOD[:-1]]).encode(),  # a field short
        json.dumps([[*GOOD, 1]]).encode(),  # a field too many
        json.dumps([["1", *GOOD[1:]]]).encode(),  # id as text
        json.dumps([[True, *GOOD[1:]]]).encode(),  # bool is an int subclass, but not an id
        json.dumps([[1, None, *GOOD[2:]]]).encode(),  # no token
        json.dumps([GOOD, {"id": 2}]).encode(),  # one bad element spoils the message
    ],
)
def test_decode_rejects_malformed_bodies_with_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        decode_jobs(body)


def test_queue_for_prefixes_the_lzq_queue_name() -> None:
    assert queue_for("lzq", "emails") == "lzq.emails"
