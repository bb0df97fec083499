"""to_canonical's pyarrow path reads exactly what the per-value (object) path reads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
from icp_engine.connectors import canonical
from icp_engine.connectors.canonical import TEXT, WHITESPACE, _plain_stamps, to_canonical
from icp_engine.sync.config import load_config

STAMPS = [
    "2024-05-01",
    "2024-05-01T12:00:00Z",
    "2024-05-01T12:00:00.123Z",
    "2024-05-01T12:00:00.123456789Z",
    "2024-02-29T23:59:59.5Z",
    "2024-02-29",
    "1900-01-01",
    "2099-12-31T23:59:59.999999999Z",
    "2023-02-29",
    "2023-02-31",
    "2024-04-31",
    "2024-00-10",
    "2024-13-01",
    "2024-05-01T24:00:00Z",
    "2024-05-01T12:60:00Z",
    "2024-05-01T12:00:60Z",
    "2024-04-30T00:00:00.Z",
    "2024-05-01T12:00:00+02:00",
    "1700000000000",
    "03/04/2025 10:00",
    "0024-04-13",
    None,
    "x",
]


def test_whitespace_is_what_str_strip_strips() -> None:
    assert set(WHITESPACE) == {chr(c) for c in range(0x110000) if chr(c).isspace()}


def test_plain_stamps_read_as_pandas_reads_them() -> None:
    values = pa.array(STAMPS, pa.large_string()).slice(0)
    ok, stamps = _plain_stamps(values)
    expected = pd.to_datetime(
        pd.Series(STAMPS, dtype=object), format="ISO8601", utc=True, errors="coerce"
    )
    naive = expected.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    assert (stamps[ok] == naive[ok]).all()
    assert ok[:8].all() and not ok[8:17].any()  # real days read; impossible ones left over


def damaged_accounts() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    junk = np.array(
        ["  ", "\u3000x\u2028", "abc", "12,5", "$1,200.50", "45%", "2024-13-01", "yes", "N",
         "03/04/2025 10:00", "1700000000000", " Tech ", "Series A;Seed;; Seed", "\x1c",
         "https://www.Acme.com/x", "2024-02-30T10:00:00Z", "0024-04-13", "'+3 x", ""],
        dtype=object,
    )  # fmt: skip
    mapping = load_config("csv", None).mapping
    fields = [spec.field for spec in mapping.objects.account.fields.values()]
    fields += [output.field for output in mapping.outputs.values()]
    raw = pd.DataFrame(
        {field: rng.choice(junk, 200) for field in dict.fromkeys(fields)}, dtype=object
    )
    raw["Id"] = [f"001{i:015d}" if i % 17 else None for i in range(200)]
    raw[canonical.LINE_COLUMN] = np.arange(2, 202)
    return raw


def test_text_and_objects_read_the_same() -> None:
    mapping = load_config("csv", None).mapping
    raw = damaged_accounts()
    objects = raw.where(raw != "", None)
    text = raw.astype({c: TEXT for c in raw.columns if c != canonical.LINE_COLUMN})
    from_objects, object_issues = to_canonical(objects, mapping, "account")
    from_text, text_issues = to_canonical(text, mapping, "account")
    pd.testing.assert_frame_equal(from_objects, from_text)
    assert object_issues == text_issues
    assert any("is not a valid number" in issue.problem for issue in text_issues)
    assert sum(issue.problem == "has no id; skipped" for issue in text_issues) == 12
    for name, kind in mapping.field_types("account").items():
        if kind in ("text", "multi", "domain"):
            assert from_text[name].dtype == TEXT, name


def test_mixed_python_values_keep_the_object_path() -> None:
    """An API's JSON: numbers and booleans in a column read as they always did."""
    mapping = load_config("csv", None).mapping
    raw = pd.DataFrame(
        {
            "Id": ["001000000000000001", "001000000000000002", "001000000000000003"],
            "NumberOfEmployees": [12, "1,200", None],
            "Name": ["Acme", 42, None],
            "ICP_Tier__c": ["A", 3, ""],
        },
        dtype=object,
    )
    frame, issues = to_canonical(raw, mapping, "account")
    assert frame["employees"].tolist()[:2] == [12.0, 1200.0]
    assert frame["name"].tolist()[:2] == ["Acme", "42"]
    assert frame["current_tier"].tolist() == ["A", 3, None]
    assert issues == []
