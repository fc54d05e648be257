"""Every subcommand refuses bad values with one ``error:`` line and exit 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pyramid.cli import main

ROOT = Path(__file__).resolve().parent.parent
DEV = str(ROOT.parent / "shared" / "data" / "sst2" / "dev.tsv")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-errors")
    text = root / "t.txt"
    text.write_text("a fine film", encoding="utf-8")
    binary = root / "b.bin"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)))
    latin = root / "latin1.txt"
    latin.write_bytes("un film tr\xe8s r\xe9ussi, vraiment tr\xe8s bien fait et touchant".encode("latin-1"))
    data = root / "d.tsv"
    data.write_text("sentence\tlabel\na fine film .\t1\na dull film .\t0\n", encoding="utf-8")
    return {"text": str(text), "binary": str(binary), "latin": str(latin), "data": str(data)}


BAD = [
    # trace
    (["trace"], "TEXT"),
    (["trace", "   "], "empty"),
    (["trace", "x", "--retention", "0"], "retention"),
    (["trace", "x", "--retention", "1.5"], "retention"),
    (["trace", "x", "--retention", "abc"], "number"),
    (["trace", "x", "--retention", "nan"], "finite"),
    (["trace", "x", "--start-layer", "0"], "--start-layer"),
    (["trace", "x", "--start-layer", "6"], "1..5"),
    (["trace", "x", "--seed", "-5"], "seed"),
    (["trace", "x", "--seed", "99999999999999999999"], "seed"),
    (["trace", "x", "--max-length", "2"], "at least 3"),
    (["trace", "--file", "{binary}"], "binary"),
    (["trace", "--file", "{latin}"], "UTF-8"),
    (["trace", "--file", "/no/such/file.txt"], "cannot read"),
    (["trace", "x", "--file", "{text}"], "either"),
    (["trace", "x", "--selector", "magic"], "invalid choice"),
    (["trace", "x", "--regime", "sideways"], "invalid choice"),
    (["trace", "x", "--model", "/no/such/model"], "model"),
    # evaluate
    (["evaluate"], "--data"),
    (["evaluate", "--data", "/no/such.tsv"], "no file"),
    (["evaluate", "--data", "{data}", "--limit", "0"], "--limit"),
    (["evaluate", "--data", "{data}", "--selectors", "magic"], "unknown selector"),
    (["evaluate", "--data", "{data}", "--retention", "0.5,abc"], "number"),
    (["evaluate", "--data", "{data}", "--retention", "1.5"], "retention"),
    (["evaluate", "--data", "{data}", "--batch-size", "0"], "--batch-size"),
    (["evaluate", "--data", "{data}", "--seed", "-1"], "seed"),
    (["evaluate", "--data", "{data}", "--regime", "nope"], "invalid choice"),
    (["evaluate", "--data", "{data}", "--max-length", "1"], "at least 3"),
    (["evaluate", "--data", "{data}", "--regime", "inference", "--head", "/no/head"], "No classifier head"),
    (["evaluate", "--data", "{data}", "--regime", "inference", "--start-layer", "9"], "1..5"),
    # saliency-report
    (["saliency-report", "--k", "0"], "--k"),
    (["saliency-report", "--data", "/nope.tsv"], "no file"),
    (["saliency-report", "--retention", "-1"], "retention"),
    # bench
    (["bench", "--repeats", "0"], "--repeats"),
    (["bench", "--config", "gpt2"], "--config"),
    (["bench", "--seq-len", "2"], "sequence length"),
    (["bench", "--batch-size", "0"], "batch size"),
    (["bench", "--selectors", "adapler"], "own"),
    (["bench", "--pair", "coreset-pool"], "SELECTOR:BASELINE"),
    (["bench", "--pair", "coreset:nope"], "unknown selector"),
    (["bench", "--pair", "adapler:coreset"], "own"),
    (["bench", "--pair", "tome:coreset", "--memory"], "--pair"),
    # trainers
    (["train", "--epochs", "0"], "> 0"),
    (["train", "--lr", "abc"], "number"),
    (["train", "--limit", "-3"], "limit"),
    (["train", "--seed", str(2 ** 40)], "seed"),
    (["train", "--selector", "magic"], "unknown selector"),
    (["train", "--retention-range", "0.5,0.1"], "LO"),
    (["train", "--retention-range", "0.5"], "LO,HI"),
    (["train", "--warmup", "2"], "share"),
    (["train", "--fp16-weights", "maybe"], "true or false"),
    (["train-adapler", "--phi", "-1"], ">= 0"),
    (["train-adapler", "--joint", "perhaps"], "true or false"),
    (["train-trbert", "--samples", "1"], "--samples"),
    (["train-trbert", "--phase", "sideways"], "rl, joint"),
    (["train-token-dropping", "--head-steps", "0"], "--head-steps"),
    (["train-ltp", "--device", "tpu"], "cpu, cuda"),
    (["train", "--device", "gpu please"], "torch device"),
    (["nonsense"], "invalid choice"),
]
if not torch.cuda.is_available():  # a CPU-only torch refuses CUDA by name, before any work
    BAD += [(["train", "--device", "cuda"], "CUDA is not available"),
            (["train-adapler", "--device", "cuda:0"], "CUDA is not available")]


@pytest.mark.parametrize("args, message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_invocations_fail_with_one_line(capsys, files, args, message):
    args = [a.format(**files) for a in args]
    code = main(args)
    out = capsys.readouterr()
    assert code == 2, out.err
    assert out.out == ""
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), out.err
    assert message in lines[0], lines[0]
    assert "Traceback" not in out.err


def test_the_table_is_long_enough():
    assert len(BAD) >= 30
    assert {a[0] for a, _ in BAD} >= {"trace", "evaluate", "saliency-report", "bench", "train", "train-adapler",
                                      "train-trbert", "train-token-dropping"}
