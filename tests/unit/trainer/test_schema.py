"""A reader's schema check names the file, the column and what it expected."""

from __future__ import annotations

import pyarrow as pa
import pytest
from rloop_trainer.errors import PhaseError
from rloop_trainer.schema import EXPERT_SCHEMA, check_schema

TOKEN_COLUMNS = ["prompt_token_ids", "response_token_ids"]


def test_a_schema_with_the_needed_columns_passes_whatever_else_it_has() -> None:
    narrow = pa.schema([EXPERT_SCHEMA.field(name) for name in TOKEN_COLUMNS])

    check_schema("expert file x", narrow, EXPERT_SCHEMA, TOKEN_COLUMNS)
    check_schema("expert file x", EXPERT_SCHEMA, EXPERT_SCHEMA, TOKEN_COLUMNS)


def test_a_missing_column_is_named_with_its_expected_type() -> None:
    without_response = pa.schema([EXPERT_SCHEMA.field("prompt_token_ids")])

    with pytest.raises(
        PhaseError, match=r"^expert file x: column 'response_token_ids' is missing \(expected"
    ):
        check_schema("expert file x", without_response, EXPERT_SCHEMA, TOKEN_COLUMNS)


def test_a_column_of_another_type_names_both_types() -> None:
    floats = pa.schema(
        [EXPERT_SCHEMA.field("prompt_token_ids"), pa.field("response_token_ids", pa.float64())]
    )

    with pytest.raises(PhaseError, match=r"'response_token_ids' has type double, expected list"):
        check_schema("expert file x", floats, EXPERT_SCHEMA, TOKEN_COLUMNS)
