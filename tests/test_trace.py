"""Traces of real text, bad input, comparisons, projections and the escaped HTML view."""

import re

import numpy as np
import pytest

from pyramid.present.figures import coverage_figure, embedding_figure, pyramid_html
from pyramid.present.projection import project_trace
from pyramid.core.schedule import Schedule
from pyramid.core.selectors import SELECTORS
from pyramid.trace import EmptyTextError, compare_traces, jaccard, tokenize, trace_flops, trace_text

FIXED_LENGTH = [n for n, c in SELECTORS.items() if c.fixed_length]  # the learned and Token Dropping selectors have their own tests

REVIEW = ("The jokes are obvious, the gags are corny, and the characters are walking caricatures - "
          "but I couldn't stop laughing. I recommend it highly for all lovers of mindless entertainment.")


@pytest.mark.parametrize("text", ["", "   ", "\n\t ", "\x00\x01\x07", None])
def test_empty_text_is_refused(minilm, text):
    with pytest.raises(EmptyTextError, match="empty"):
        tokenize(minilm, text)


@pytest.mark.parametrize("text", ["naïve café — ünïcödé", "emoji 🎬🍿👍🏽 ok", "控制\x1bchars\u200b\ufeff here",
                                  "<img src=x onerror=alert(1)>", "🎬", "a" * 3000])
def test_unusual_text_traces(minilm, text):
    tr = trace_text(minilm, text, "coreset", Schedule(retention=0.5))
    assert tr.tokens[0] == "[CLS]" and tr.tokens[-1] == "[SEP]"
    assert len(tr.layers) == 6


def test_long_text_is_truncated(minilm):
    text = "word " * 800
    tr = trace_text(minilm, text, "attention", Schedule(retention=0.3))
    assert tr.truncated and tr.n_tokens == 512 and tr.original_length > 512
    assert not trace_text(minilm, REVIEW, "attention", Schedule(retention=0.3)).truncated
    short = tokenize(minilm, text, max_length=64)
    assert short.truncated and len(short.input_ids) == 64


@pytest.mark.parametrize("name", FIXED_LENGTH)
def test_trace_structure(minilm, name):
    sch = Schedule(retention=0.3, start_layer=2)
    tr = trace_text(minilm, REVIEW, name, sch)
    n = tr.n_tokens
    assert tr.layers[0].alive == list(range(n))
    assert tr.lengths == sch.lengths(n, 6)
    for j, lt in enumerate(tr.layers):
        assert set(lt.kept) <= set(lt.alive) and lt.kept == sorted(lt.kept) and 0 in lt.kept
        assert len(lt.kept) == tr.lengths[j]
        assert lt.hidden.shape == (len(lt.alive), 384)
        if j + 1 < len(tr.layers):
            assert tr.layers[j + 1].alive == lt.kept
        # coverage radius recomputed from the recorded hidden states: the distance of each dropped token to
        # its nearest kept token, or of each merged token to the token that absorbed it
        rows = {i: r for r, i in enumerate(lt.alive)}
        dropped = [i for i in lt.alive if i not in set(lt.kept)]
        merged = lt.merged
        if dropped:
            h = lt.hidden.astype(np.float64)
            dist = [np.linalg.norm(h[rows[i]] - h[rows[merged[i]]]) if i in merged else
                    np.linalg.norm(h[rows[i]][None] - h[[rows[k] for k in lt.kept]], axis=-1).min() for i in dropped]
            assert lt.coverage_radius == pytest.approx(max(dist), rel=1e-4)
            assert set(merged) <= set(dropped) and set(merged.values()) <= set(lt.kept) - {0}
        else:
            assert lt.coverage_radius == 0.0
    assert tr.layers[0].selection_seconds == 0.0  # start layer 2: nothing selected after layer 1
    assert tr.layers[-1].coverage_radius == 0.0
    flops = trace_flops(tr, minilm.config)
    assert flops.speedup > 1.0 and flops.encoder_speedup >= flops.speedup


def test_coreset_covers_better_than_the_other_selectors_on_average(minilm):
    sch = Schedule(retention=0.3)
    traces = {name: trace_text(minilm, REVIEW, name, sch) for name in FIXED_LENGTH}
    mean = {name: np.mean([lt.coverage_radius for lt in tr.layers[:-1]]) for name, tr in traces.items()}
    # against the other dropping selectors (core-set pooling keeps the same centres; ToMe merges)
    others = [k for k in mean if k != "coreset" and SELECTORS[k].routing == "drop"]
    assert mean["coreset"] < min(mean[k] for k in others)


def test_compare_traces(minilm):
    sch = Schedule(retention=0.4)
    a = trace_text(minilm, REVIEW, "coreset", sch)
    b = trace_text(minilm, REVIEW, "first-k", sch)
    rows = compare_traces(a, b)
    assert len(rows) == 6
    for r, la, lb in zip(rows, a.layers, b.layers):
        assert r["jaccard"] == pytest.approx(jaccard(la.kept, lb.kept))
        assert sorted(r["both"] + r["only_a"]) == la.kept
    assert compare_traces(a, a)[2]["jaccard"] == 1.0
    with pytest.raises(ValueError):
        compare_traces(a, trace_text(minilm, "another text", "coreset", sch))
    assert jaccard([], []) == 1.0 and jaccard([1, 2], [2, 3]) == pytest.approx(1 / 3)


@pytest.mark.parametrize("text", ["ok", "a fine film", REVIEW])
@pytest.mark.slow
def test_projection_shapes_including_short_texts(minilm, text):
    tr = trace_text(minilm, text, "coreset", Schedule(retention=0.3))
    proj = project_trace(tr)
    assert proj.layers == list(range(7))
    assert [len(t) for t in proj.tokens] == [tr.n_tokens] + tr.alive_counts()
    assert all(c.shape == (len(t), 2) and np.isfinite(c).all() for c, t in zip(proj.coords, proj.tokens))
    fig = embedding_figure(tr, proj, 2)
    names = [t.name for t in fig.data]
    assert "kept" in names


def test_pyramid_html_escapes_user_text(minilm):
    tr = trace_text(minilm, "<script>alert(1)</script> <img src=x onerror=alert(2)> \"quoted\"", "coreset",
                    Schedule(retention=0.5))
    from pyramid.words import trace_groups

    page = pyramid_html(tr, trace_groups(tr, False), caption="<b>caption</b>")
    assert "<script" not in page and "<img" not in page and "<b>caption" not in page
    assert "&lt;" in page and "&quot;" in page
    assert page.count('class="pl-row"') == 6
    words = pyramid_html(tr, trace_groups(tr, True))
    assert "<script" not in words and "&lt;" in words
    fig = coverage_figure({"Core-set": tr}, "Core-set")
    # a radius is drawn only where something was dropped (the last layer drops nothing)
    assert list(fig.data[0].y) == [lt.coverage_radius if len(lt.kept) < len(lt.alive) else None for lt in tr.layers]


def test_overview_strip_is_escaped_html_with_every_state(minilm):
    """The overview strip: one column per token spanning every layer, the states of layer_states, escaped text."""
    from pyramid.present.figures import STRIP_ROW_PX, layer_states, pyramid_strip_html, wrapped_title
    from pyramid.words import trace_groups

    tr = trace_text(minilm, '<img src=x onerror=alert(1)> "odd" film', "coreset", Schedule(retention=0.3))
    groups = trace_groups(tr, False)
    page = pyramid_strip_html(tr, groups, "<b>title</b>")
    assert "<img" not in page and "<b>title" not in page and "&lt;" in page and "&quot;" in page
    labels, states = layer_states(tr, groups)
    columns = page.split('<div class="pl-sc"')[1:]
    assert len(columns) == tr.n_tokens
    for g, chunk in enumerate(columns):
        blocks = re.findall(r'<div class="pl-s(\d)" style="height:(\d+)px"></div>', chunk)
        drawn = [int(st) for st, h in blocks for _ in range((int(h) + 2) // STRIP_ROW_PX)]
        assert drawn == list(states[:, g]), g
    assert 'title="#0 [CLS]: layers 1-6 kept"' in page
    assert wrapped_title("a <b> " + "word " * 40, 50)[1] == 5 and "&lt;b&gt;" in wrapped_title("a <b>")[0]


def test_trace_rows_flatten_every_alive_token(minilm):
    import csv
    import io

    import pandas as pd

    from pyramid.trace import TRACE_CSV_COLUMNS, trace_rows

    tr = trace_text(minilm, "<b>bold</b> and, a \"quoted\" film", "coreset", Schedule(retention=0.5))
    rows = trace_rows(tr)
    assert len(rows) == sum(len(lt.alive) for lt in tr.layers)
    assert all(tuple(r) == TRACE_CSV_COLUMNS for r in rows)
    for lt in tr.layers:
        mine = [r for r in rows if r["layer"] == lt.layer]
        assert [r["token_index"] for r in mine] == lt.alive
        assert [r["token_index"] for r in mine if r["kept"]] == lt.kept
    back = list(csv.DictReader(io.StringIO(pd.DataFrame(rows).to_csv(index=False))))
    assert [r["token"] for r in back[: tr.n_tokens]] == tr.tokens  # quotes and commas survive the CSV


def test_a_text_is_tokenized_once_and_truncated_as_the_tokenizer_would(minilm):
    """One tokenizer call per text (issue 41), with the same ids, words and truncation as the tokenizer's own."""
    import dataclasses

    from pyramid.tokenization import tokenize

    calls = []

    class Counting:
        def __init__(self, tok):
            self.tok = tok

        def __call__(self, *args, **kwargs):
            calls.append(kwargs)
            return self.tok(*args, **kwargs)

        def __getattr__(self, name):
            return getattr(self.tok, name)

    enc = dataclasses.replace(minilm, tokenizer=Counting(minilm.tokenizer))
    text = "An unexpectedly moving film, with superb acting. " * 30
    for limit in (None, 16, 64):
        calls.clear()
        got = tokenize(enc, text, limit)
        assert len(calls) == 1
        ref = minilm.tokenizer(text, truncation=True, max_length=got.max_length)["input_ids"]
        assert got.input_ids == ref and got.truncated == (got.original_length > got.max_length)
        assert len(got.word_ids) == len(got.input_ids) and got.word_ids[0] is None and got.word_ids[-1] is None
