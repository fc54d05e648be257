"""Reading labelled TSV/CSV files."""

import pytest

from pyramid.data import DataError, parse_label, read_labelled

SHARED = __import__("pathlib").Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def test_tsv_unquoted_with_quotes_in_text(tmp_path):
    p = tmp_path / "d.tsv"
    p.write_text('sentence\tlabel\nit \'s a "great" film .\t1\nawful .\t0\n', encoding="utf-8")
    d = read_labelled(str(p))
    assert d.texts == ['it \'s a "great" film .', "awful ."]
    assert d.labels == [1, 0]
    assert (d.text_column, d.label_column) == ("sentence", "label")


def test_csv_quoted_word_labels_and_br_tags(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text('review,sentiment\n"Loved it,<br /><br />really",positive\n"Bad, ""very"" bad",NEGATIVE\n',
                 encoding="utf-8")
    d = read_labelled(str(p))
    assert d.labels == [1, 0] and d.label_names == ["NEGATIVE", "positive"]  # inferred: sorted, first spelling
    assert read_labelled(str(p), label_names=["negative", "positive"]).labels == [1, 0]
    assert "<br" not in d.texts[0] and d.texts[0].startswith("Loved it,")
    assert d.texts[1] == 'Bad, "very" bad'


def test_explicit_columns_and_errors(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("body,y\nhello,1\n", encoding="utf-8")
    with pytest.raises(DataError, match="--text-column"):
        read_labelled(str(p))
    d = read_labelled(str(p), text_column="body", label_column="y")
    assert d.texts == ["hello"] and d.labels == [1]
    with pytest.raises(DataError, match="no text column 'nope'"):
        read_labelled(str(p), text_column="nope", label_column="y")
    with pytest.raises(DataError, match="does not exist"):
        read_labelled(str(tmp_path / "missing.tsv"))
    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence\tlabel\nok\tmaybe\n", encoding="utf-8")
    with pytest.raises(DataError, match="row 2: unknown label 'maybe'"):
        read_labelled(str(bad), label_names=["negative", "positive"])
    empty = tmp_path / "empty.tsv"
    empty.write_text("sentence\tlabel\n", encoding="utf-8")
    with pytest.raises(DataError, match="no rows"):
        read_labelled(str(empty))


def test_parse_label():
    assert parse_label("Positive", ["negative", "positive"]) == 1
    assert parse_label(" 0 ", ["negative", "positive"]) == 0
    with pytest.raises(DataError, match="out of range"):
        parse_label("2", ["negative", "positive"])


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data not present")
def test_shared_data_sets_load_without_options():
    sst = read_labelled(str(SHARED / "sst2" / "dev.tsv"))
    assert len(sst) == 872 and sum(sst.labels) == 444 and sst.label_names == ["0", "1"]
    imdb = read_labelled(str(SHARED / "imdb" / "dev.csv"))
    assert len(imdb) == 600 and set(imdb.labels) == {0, 1} and imdb.label_names == ["negative", "positive"]
    bbc = read_labelled(str(SHARED / "bbc" / "dev.csv")) if (SHARED / "bbc" / "dev.csv").is_file() else None
    if bbc is not None:  # five topics, inferred from the file
        assert len(bbc.label_names) == 5
    assert not any("<br" in t for t in imdb.texts)


def test_accuracy_at_matched_speedup_interpolates_the_curve():
    from pyramid.analysis.results import accuracy_at_speedup

    rows = [{"selector": "coreset", "retention": 1.0, "accuracy": 0.9, "flops_speedup": 1.0},
            {"selector": "coreset", "retention": 0.5, "accuracy": 0.8, "flops_speedup": 1.5},
            {"selector": "coreset", "retention": 0.3, "accuracy": 0.6, "flops_speedup": 2.0},
            {"selector": "adapler", "retention": 0.4, "accuracy": 0.85, "flops_speedup": 1.75}]
    assert accuracy_at_speedup(rows, "coreset", 1.75) == pytest.approx(0.7)
    assert accuracy_at_speedup(rows, "coreset", 1.25) == pytest.approx(0.85)
    assert accuracy_at_speedup(rows, "coreset", 2.5) is None
