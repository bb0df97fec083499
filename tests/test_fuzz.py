"""Property tests: random damage thrown at the CSV reader and random YAML at the loader.

Whatever the input, the answer is a clear error (a `SourceError` naming the file, or
`ConfigProblem`s naming the file) or readable rows / data, and never a traceback. The
Hypothesis deadline is a hang guard (a generous bound per example), not a speed target;
example counts are kept small so the whole module runs in seconds.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from icp_engine import mappings
from icp_engine.connectors.csvfiles import CsvConnector
from icp_engine.connectors.errors import SourceError
from icp_engine.connectors.salesforce.ids import to_18
from icp_engine.sync.config import load_config
from icp_engine.sync.yamlfile import ConfigError, ConfigProblem, load_yaml, read_yaml

pytestmark = pytest.mark.slow

FUZZ = settings(
    max_examples=60,
    deadline=10_000,  # ms: a hang guard, far above the few ms an example takes
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
HEADER = b"Id,Name,Industry,NumberOfEmployees,AnnualRevenue,CreatedDate,Technologies__c"
ROWS = [
    f'{to_18(f"001{n:012d}")},"Company {n}, Inc.",Software,{n * 7},{n * 1000},'
    f'2024-0{1 + n % 9}-1{n % 9},"Salesforce;Slack"'.encode()
    for n in range(40)
]
BASE = b"\n".join([HEADER, *ROWS]) + b"\n"
OPPORTUNITIES = b"Id,AccountId,StageName,IsClosed,IsWon,Amount,CloseDate,CreatedDate\n"
MAPPING = load_config("csv", None).mapping

NASTY = [b'"', b'""', b",", b"\n", b"\r", b"\r\n", b"\x00", b"\xff\xfe", b"\xe9", b"\xc3",
         b"=cmd|' /C calc'!A0", b"\t", b'"\n"', b"\xef\xbb\xbf", b"0015g002ptzaDIK"]  # fmt: skip

damage = st.lists(
    st.tuples(
        st.sampled_from(["insert", "delete", "replace", "duplicate", "truncate"]),
        st.integers(min_value=0, max_value=len(BASE)),
        st.integers(min_value=0, max_value=200),
        st.one_of(st.sampled_from(NASTY), st.binary(max_size=12)),
    ),
    min_size=1,
    max_size=6,
)


def damaged(operations: list[tuple[str, int, int, bytes]]) -> bytes:
    data = BASE
    for op, position, size, chunk in operations:
        at = min(position, len(data))
        if op == "insert":
            data = data[:at] + chunk + data[at:]
        elif op == "delete":
            data = data[:at] + data[at + size :]
        elif op == "replace":
            data = data[:at] + chunk + data[at + len(chunk) :]
        elif op == "duplicate":
            data = data[:at] + data[at : at + size] + data[at:]
        else:
            data = data[: max(at, len(HEADER) // 2)]
    return data


@FUZZ
@given(operations=damage)
def test_damaged_csv_gives_rows_or_a_clear_error(
    tmp_path_factory: object, operations: list[tuple[str, int, int, bytes]]
) -> None:
    folder = Path(tmp_path_factory.mktemp("fuzz"))  # type: ignore[attr-defined]
    (folder / "Account.csv").write_bytes(damaged(operations))
    (folder / "Opportunity.csv").write_bytes(OPPORTUNITIES)
    connector = CsvConnector(MAPPING, folder)
    error: SourceError | None = None
    try:
        stream = connector.pull("account")
        pages = list(stream)
    except SourceError as exc:
        error = exc
    if error is not None:
        assert "Account.csv" in str(error)
        return
    frame = pd.concat(pages, ignore_index=True) if pages else pd.DataFrame()
    issues = stream.report.issues
    assert all(i.line is None or i.line >= 1 for i in issues)
    if len(frame):
        ids = frame["account_id"]
        assert ids.is_unique  # duplicates are reported, never two records
        assert not ids.str.contains(r"[\x00-\x1f]").any()  # no control character let in
        assert not ids.str.match(r"[=+\-@]").any()  # no formula let in
    # a row is scored, reported, or was never a row: damage never swallows the file
    assert len(frame) + len(issues) >= 1 or len(damaged(operations).splitlines()) <= 2


HOSTILE_YAML = st.sampled_from(
    [
        "a: &a [x, x]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b, *b]\n",
        "loop: &l [*l]\n",
        "? [a, b]\n: 1\n",
        "? {a: 1}\n: 2\n",
        "n: " + "9" * 5000 + "\n",
        "f: 1.0e+999\n",
        "d: 2020-02-31\n",
        "t: !!python/object/apply:os.system ['true']\n",
        "b: !!binary aGVsbG8=\n",
        "s: !!set {a, b}\n",
        "deep: " + "[" * 300 + "]" * 300 + "\n",
        "x: \x07\n",
        "tab:\tvalue\n",
        "dup: 1\ndup: 2\n",
        "<<: *missing\n",
        "%YAML 1.1\n---\na: 1\n...\n---\nb: 2\n",
        "criteria:\n  must_have:\n    - {field: employees, between: [2020-01-01, 5]}\n",
        "tiers: {A: .nan, B: -.inf}\n",
    ]
)
yaml_text = st.one_of(
    HOSTILE_YAML,
    st.text(max_size=300),
    st.lists(
        st.one_of(HOSTILE_YAML, st.text(alphabet=":-[]{}&*!?|>'\"#%@` \n\t", max_size=40)),
        max_size=5,
    ).map("".join),
)


@FUZZ
@given(text=yaml_text)
def test_random_yaml_gives_data_or_located_problems(text: str) -> None:
    document = load_yaml(text, "icp.yaml")
    assert all(isinstance(p, ConfigProblem) and p.file == "icp.yaml" for p in document.problems)
    assert all(p.line is None or p.line >= 1 for p in document.problems)


@FUZZ
@given(text=yaml_text)
def test_random_criteria_file_is_validated_never_raised(
    tmp_path_factory: object, text: str
) -> None:
    folder = Path(tmp_path_factory.mktemp("yaml"))  # type: ignore[attr-defined]
    (folder / "csv.yaml").write_text(mappings.default("csv.yaml").read_text(encoding="utf-8"))
    (folder / "icp.yaml").write_text(
        mappings.default("icp.yaml").read_text(encoding="utf-8") + "\n" + text,
        encoding="utf-8",
        errors="surrogatepass",
    )
    problems: list[ConfigProblem] = []
    try:
        load_config("csv", folder)
    except ConfigError as exc:
        problems = exc.problems or [ConfigProblem("", None, (), "")]
    assert all(p.file and p.message for p in problems)


@FUZZ
@given(raw=st.binary(max_size=400))
def test_random_bytes_as_a_mapping_file(tmp_path_factory: object, raw: bytes) -> None:
    path = Path(tmp_path_factory.mktemp("bytes")) / "icp.yaml"  # type: ignore[attr-defined]
    path.write_bytes(raw)
    document = read_yaml(path)
    assert all(isinstance(p, ConfigProblem) for p in document.problems)
