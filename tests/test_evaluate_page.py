"""The Evaluate page (AppTest): a labelled file through the selectors in a background sweep, bad files
answered with a clear message, intervals in the results, spreadsheet-safe downloads."""

from __future__ import annotations

import time

import pytest
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.slow

SCRIPT = """
from app import evaluate
evaluate.render()
"""

GOOD = ["a wonderful , moving film .", "the best thing i have seen this year .", "a dull , lifeless mess .",
        "boring and far too long .", "charming and often affecting .", "an awful waste of time ."]


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    rows = ["text,label"] + [f'"{t}",{"positive" if i % 3 != 2 and i not in (3, 5) else "negative"}'
                             for i, t in enumerate(GOOD * 3)]
    (tmp_path / "good.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (tmp_path / "formula.csv").write_text("text,label\n\"=1+1 a fine film\",1\n\"-dull\",0\n\"@ok\",1\n", encoding="utf-8")
    (tmp_path / "binary.csv").write_bytes(b"PK\x03\x04\x00\x00binary\x00zip")
    (tmp_path / "latin1.csv").write_bytes("text,label\ncaf\xe9 cr\xe8me,1\nbad,0\n".encode("latin-1"))
    (tmp_path / "onecolumn.csv").write_text("just text\nhello\nworld\n", encoding="utf-8")
    (tmp_path / "oneclass.csv").write_text("text,label\na,positive\nb,positive\n", encoding="utf-8")
    (tmp_path / "unmapped.csv").write_text("text,label\na,positive\nb,meh\nc,2\n", encoding="utf-8")
    (tmp_path / "ragged.csv").write_text("text,label\na,positive,extra\n", encoding="utf-8")
    (tmp_path / "empty.csv").write_text("", encoding="utf-8")
    (tmp_path / "headeronly.tsv").write_text("sentence\tlabel\n", encoding="utf-8")
    monkeypatch.setenv("PYRAMID_LENS_DATA_ROOT", str(tmp_path))
    return tmp_path


def _page():
    return AppTest.from_string(SCRIPT, default_timeout=300)


def _choose(at, file):
    at.radio(key="ev_source").set_value("A data set on this server").run()
    at.selectbox(key="ev_server_file").set_value(file).run()
    return at


@pytest.mark.parametrize("file,message", [
    ("binary.csv", "binary"), ("latin1.csv", "not UTF-8"), ("onecolumn.csv", "one column"),
    ("oneclass.csv", "same label"), ("unmapped.csv", "'meh', '2'"), ("ragged.csv", "3 cells"),
    ("empty.csv", "empty"), ("headeronly.tsv", "no rows"),
])
def test_bad_files_get_a_clear_message(data_root, file, message):
    at = _choose(_page().run(), file)
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert message in errors, errors


def test_a_sweep_runs_in_the_background_and_ends_with_intervals(data_root):
    at = _choose(_page().run(), "good.csv")
    assert not at.error and "18 labelled texts" in " ".join(c.value for c in at.caption)
    at.multiselect(key="ev_selectors").set_value(["coreset", "random"])
    at.multiselect(key="ev_retentions").set_value([0.5])
    next(b for b in at.button if b.label == "Run the sweep").click().run()
    job = at.session_state["ev_job"]
    deadline = time.time() + 240
    while job.running and time.time() < deadline:
        time.sleep(0.5)
    at.run()
    assert not at.exception and not at.error
    assert job.total == 18 * 3 and job.done == job.total and len(job.rows) == 4
    for r in job.rows:
        assert r["ci_low"] <= r["accuracy"] <= r["ci_high"] and r["f1_low"] <= r["macro_f1"] <= r["f1_high"]
    table = next(df.value for df in at.dataframe if "accuracy %" in df.value.columns)
    assert len(table) == 4 and table["accuracy %"].str.contains(r"\[").all()
    assert {d.proto.label for d in at.get("download_button")} >= {"Results (CSV)", "Results (JSON)"}


def test_cancel_stops_the_sweep(data_root):
    at = _choose(_page().run(), "good.csv")
    at.multiselect(key="ev_retentions").set_value([0.7, 0.5, 0.3, 0.2, 0.1, 0.05])
    next(b for b in at.button if b.label == "Run the sweep").click().run()
    job = at.session_state["ev_job"]
    job.cancel()
    deadline = time.time() + 240
    while job.running and time.time() < deadline:
        time.sleep(0.2)
    at.run()
    assert job.cancelled and job.done < job.total
    assert any("cancelled" in w.value for w in at.warning)


def test_downloaded_csv_cells_cannot_run_as_formulas():
    from app.panels import safe_csv

    text = safe_csv([{"token": "=HYPERLINK(\"http://x\")", "n": 3}, {"token": "-", "n": -1}, {"token": "ok", "n": 0}])
    lines = text.splitlines()
    assert lines[1].startswith("\"'=HYPERLINK") and lines[2] == "'-,-1" and lines[3] == "ok,0"
