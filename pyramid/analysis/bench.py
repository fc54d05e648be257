"""Measured against predicted speedup of the pyramid, and the memory of a training step.

For each model configuration, sequence length, batch size, selector and retention, the full model
(the Hugging Face ``BertModel`` forward) and the pyramid (:class:`PyramidEncoder`) run in the same
process on the same batch: one warm-up run each, then ``repeats`` timed runs of each, alternating
full and pyramid, median wall time of each. The
FLOPs-predicted speedup is the analytic one of :func:`pyramid.core.schedule.flops_speedup`
(the selection FLOPs of the selector that ran included); ``ratio = measured / predicted``.

``selection_ms`` is the median time the selector's ``select`` calls took inside the timed pyramid runs,
``selection_share`` its share of the pyramid's time.

:func:`run_selection_pairs` compares two selectors' selection times (``selection_ratio``, e.g. core-set pooling
against core-set, issue 30) from one run that alternates their pyramids on the same batch, so that drifts of
a shared machine hit both alike; two selections timed in separate runs moved by up to 25%.

Configurations: ``default`` is the default model (MiniLM-L6-H384, its real weights); ``bert-base`` is
a 12-layer, 768-wide BERT with random weights (timing does not depend on the weight values).
The input is real English text (the shipped examples, repeated to the length asked for).
"""

from __future__ import annotations

import json
import resource
import statistics
import time
from typing import Callable, Sequence

import torch

from ..core.artifacts import ASSETS_DIR
from .evaluation import example_speedups
from ..core.loading import LoadedEncoder, encoder_from_model, load_encoder
from ..core.schedule import Schedule
from ..core.selectors import Selector, get_selector

BENCH_KEYS = ("config", "seq_len", "batch_size", "selector", "retention", "full_ms", "pyramid_ms", "selection_ms",
              "selection_share", "measured_speedup", "flops_speedup", "ratio")
PAIR_KEYS = ("config", "seq_len", "batch_size", "retention", "selector", "baseline", "pyramid_ms", "baseline_pyramid_ms",
             "selection_ms", "baseline_selection_ms", "selection_ratio")
MEMORY_KEYS = ("config", "seq_len", "batch_size", "selector", "retention", "full_mb", "pyramid_mb", "memory_ratio")
CONFIGS = ("default", "bert-base")
EXAMPLES = ASSETS_DIR / "examples.json"


def bench_encoder(config: str) -> LoadedEncoder:
    """The encoder of a benchmark configuration: ``default`` (MiniLM-L6), ``bert-base`` (a random-weight
    BERT-base shape), or any model :func:`pyramid.core.loading.load_encoder` accepts (a folder, a hub id).

    Raises:
        ModelLoadError: the model cannot be loaded.
    """
    if config == "default":
        return load_encoder()
    if config == "bert-base":
        from transformers import BertConfig, BertModel

        base = load_encoder()  # for its tokenizer (same 30,522-piece uncased vocabulary as BERT-base)
        torch.manual_seed(0)
        model = BertModel(BertConfig(), add_pooling_layer=False)
        return encoder_from_model(model, base.tokenizer, name="bert-base (random weights)")
    return load_encoder(config)


def bench_batch(encoder: LoadedEncoder, seq_len: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)``, both ``(batch_size, seq_len)``: real text, no padding.

    Raises:
        ValueError: ``seq_len`` is below 3 or above the model's limit.
    """
    if not 3 <= seq_len <= encoder.max_length:
        raise ValueError(f"--seq-len must be in 3..{encoder.max_length}, got {seq_len}")
    texts = [e["text"] for e in json.loads(EXAMPLES.read_text(encoding="utf-8"))["examples"]]
    tok = encoder.tokenizer
    pieces: list[int] = []
    while len(pieces) < seq_len:
        for t in texts:
            pieces.extend(tok(t, add_special_tokens=False)["input_ids"])
    rows = []
    for b in range(batch_size):  # each row a different window of the text
        start = (b * 37) % max(1, len(pieces) - seq_len + 2)
        body = pieces[start:start + seq_len - 2]
        rows.append([tok.cls_token_id] + body + [tok.sep_token_id])
    ids = torch.tensor(rows, dtype=torch.long)
    return ids, torch.ones_like(ids)


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` runs (seconds)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def paired_median_seconds(fn_a: Callable[[], object], fn_b: Callable[[], object], repeats: int,
                          warmup: int = 1) -> tuple[float, float]:
    """Median wall times of ``fn_a`` and ``fn_b`` timed alternately (a, b, a, b, ...), seconds.

    Alternating makes slow drifts of a shared machine (other processes, frequency changes) hit both
    sides alike, so their ratio is steadier than with two separate series.
    """
    for _ in range(warmup):
        fn_a()
        fn_b()
    ta, tb = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn_a()
        t1 = time.perf_counter()
        fn_b()
        t2 = time.perf_counter()
        ta.append(t1 - t0)
        tb.append(t2 - t1)
    return statistics.median(ta), statistics.median(tb)


def run_bench(
    configs: Sequence[str] = CONFIGS,
    seq_lens: Sequence[int] = (128, 512),
    batch_sizes: Sequence[int] = (1, 8),
    selectors: Sequence[str | Selector] = ("coreset", "attention", "random", "first-k"),
    retentions: Sequence[float] = (0.3,),
    start_layer: int = 1,
    repeats: int = 5,
    progress: bool = False,
) -> list[dict]:
    """Time the full model and the pyramid; one row per setting with the keys :data:`BENCH_KEYS`.

    Times are in milliseconds (``full_ms``, ``pyramid_ms``). ``progress`` shows a tqdm bar on stderr.
    """
    from tqdm.auto import tqdm

    from ..core.encoder import PyramidEncoder

    rows = []
    bar = tqdm(total=len(configs) * len(seq_lens) * len(batch_sizes) * len(selectors) * len(retentions),
               desc="bench", unit="setting", disable=not progress)
    for config in configs:
        encoder = bench_encoder(config)
        model = encoder.model
        for seq_len in seq_lens:
            for batch_size in batch_sizes:
                ids, mask = bench_batch(encoder, seq_len, batch_size)
                with torch.inference_mode():
                    for entry in selectors:
                        selector = get_selector(entry)
                        name = selector.name
                        for r in retentions:
                            pyr = PyramidEncoder(encoder, selector, Schedule(retention=r, start_layer=start_layer))
                            selection: list[float] = []

                            def pyramid_run(pyr=pyr, selection=selection):
                                out = pyr(ids, mask)
                                selection.append(sum(lo.selection_seconds for lo in out.layers))
                                return out

                            full_s, pyr_s = paired_median_seconds(
                                lambda: model(input_ids=ids, attention_mask=mask), pyramid_run, repeats)
                            sel_s = statistics.median(selection[-repeats:])
                            out = pyr(ids, mask)
                            predicted = float(example_speedups(out, encoder.config)[0].mean())
                            measured = full_s / pyr_s
                            row = {
                                "config": config, "seq_len": seq_len, "batch_size": batch_size,
                                "selector": name, "retention": float(r),
                                "full_ms": round(full_s * 1e3, 2), "pyramid_ms": round(pyr_s * 1e3, 2),
                                "selection_ms": round(sel_s * 1e3, 2), "selection_share": round(sel_s / pyr_s, 4),
                                "measured_speedup": round(measured, 3), "flops_speedup": round(predicted, 3),
                                "ratio": round(measured / predicted, 3),
                            }
                            rows.append(row)
                            bar.update(1)
                            bar.set_postfix_str(f"{config} {seq_len} tok b{batch_size} {name}: ratio {row['ratio']:.2f}")
    bar.close()
    return rows


def run_selection_pairs(
    pairs: Sequence[tuple[str, str]],
    configs: Sequence[str] = CONFIGS,
    seq_lens: Sequence[int] = (512,),
    batch_sizes: Sequence[int] = (1, 8),
    retentions: Sequence[float] = (0.3,),
    start_layer: int = 1,
    repeats: int = 21,
    progress: bool = False,
) -> list[dict]:
    """A selector's selection time against a baseline selector's, from one alternating run; one row per
    setting with the keys :data:`PAIR_KEYS`.

    For each ``(selector, baseline)`` pair and setting, the two pyramids run alternately on the same batch
    (one warm-up each, then ``repeats`` runs each: a, b, a, b, ...). ``selection_ms`` and
    ``baseline_selection_ms`` are the medians over the runs of each pyramid's summed selection time (as
    ``selection_ms`` of :func:`run_bench`: the ``select`` call, the encoder's checks and the routing's merge
    targets); ``selection_ratio = selection_ms / baseline_selection_ms``. ``pyramid_ms`` and
    ``baseline_pyramid_ms`` are the two pyramids' median wall times. Times are in milliseconds.

    Raises:
        KeyError: a name that is not a registered selector.
    """
    from tqdm.auto import tqdm

    from ..core.encoder import PyramidEncoder

    rows = []
    bar = tqdm(total=len(configs) * len(seq_lens) * len(batch_sizes) * len(pairs) * len(retentions),
               desc="bench pairs", unit="setting", disable=not progress)
    for config in configs:
        encoder = bench_encoder(config)
        for seq_len in seq_lens:
            for batch_size in batch_sizes:
                ids, mask = bench_batch(encoder, seq_len, batch_size)
                with torch.inference_mode():
                    for name, base in pairs:
                        for r in retentions:
                            schedule = Schedule(retention=r, start_layer=start_layer)
                            pyrs = [PyramidEncoder(encoder, get_selector(n), schedule) for n in (name, base)]
                            selection: tuple[list[float], list[float]] = ([], [])

                            def run(i: int) -> None:
                                out = pyrs[i](ids, mask)
                                selection[i].append(sum(lo.selection_seconds for lo in out.layers))

                            a_s, b_s = paired_median_seconds(lambda: run(0), lambda: run(1), repeats)
                            sel_a = statistics.median(selection[0][-repeats:])
                            sel_b = statistics.median(selection[1][-repeats:])
                            rows.append({
                                "config": config, "seq_len": seq_len, "batch_size": batch_size, "retention": float(r),
                                "selector": pyrs[0].selector.name, "baseline": pyrs[1].selector.name,
                                "pyramid_ms": round(a_s * 1e3, 2), "baseline_pyramid_ms": round(b_s * 1e3, 2),
                                "selection_ms": round(sel_a * 1e3, 3), "baseline_selection_ms": round(sel_b * 1e3, 3),
                                "selection_ratio": round(sel_a / max(sel_b, 1e-12), 3),
                            })
                            bar.update(1)
                            bar.set_postfix_str(f"{config} {seq_len} tok b{batch_size} {name}/{base}: "
                                                f"{rows[-1]['selection_ratio']:.2f}x")
    bar.close()
    return rows


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


def _reset_peak() -> bool:
    """Return freed heap to the system and reset the kernel's peak resident size (``VmHWM``).

    Without it the peak of loading the model (freed afterwards) can exceed a small step's, and freed pages
    still resident hide the step's own allocations. Linux only; returns False where the reset is unavailable.
    """
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # 5: reset the peak resident set size to the current one (proc(5))
        return True
    except OSError:
        return False


def _peak_bytes(reset: bool) -> int:
    """Peak resident bytes since :func:`_reset_peak` (``VmHWM``), else the process's ``ru_maxrss``."""
    if reset:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # ru_maxrss is in KiB on Linux


def _train_step_peak(config: str, seq_len: int, batch_size: int, selector: str | None, retention: float,
                     start_layer: int) -> float:
    """Peak memory increase of one training step, in MB (runs in a fresh process)."""
    from ..core.encoder import PyramidEncoder

    torch.manual_seed(0)
    encoder = bench_encoder(config)
    encoder.model.train()
    sel = get_selector(selector or "coreset")
    schedule = Schedule(retention=retention if selector else 1.0, start_layer=start_layer)
    pyr = PyramidEncoder(encoder, sel, schedule)
    ids, mask = bench_batch(encoder, seq_len, batch_size)
    if torch.cuda.is_available():  # pragma: no cover - no GPU in CI
        raise RuntimeError("memory bench runs on CPU")
    reset = _reset_peak()
    before = _rss_bytes()
    out = pyr(ids, mask)
    loss = out.cls_hidden.float().pow(2).mean()
    loss.backward()
    peak = _peak_bytes(reset)
    return max(0.0, (peak - before) / 2**20)


def _peak_worker(queue, *args) -> None:
    try:
        queue.put(("ok", _train_step_peak(*args)))
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        queue.put(("error", repr(exc)))


def train_step_peak_mb(config: str, seq_len: int, batch_size: int, selector: str | None,
                       retention: float, start_layer: int = 1) -> float:
    """Peak resident memory added by one training step (forward + backward, all weights trainable).

    Measured in a fresh process (``multiprocessing`` spawn) as the peak resident size during the step
    (``VmHWM`` reset just before it, freed heap trimmed; ``ru_maxrss`` where that is unavailable) minus the
    resident size just before it, so earlier work in this process cannot hide the peak. In MB (2**20
    bytes). ``selector=None`` measures the full model.

    Raises:
        RuntimeError: the worker failed.
    """
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_peak_worker, args=(queue, config, seq_len, batch_size, selector, retention, start_layer))
    proc.start()
    status, value = queue.get()
    proc.join()
    if status != "ok":
        raise RuntimeError(f"memory measurement failed: {value}")
    return float(value)


def run_memory(configs: Sequence[str] = ("default",), seq_len: int = 512, batch_size: int = 32,
               selectors: Sequence[str] = ("coreset",), retentions: Sequence[float] = (0.3,),
               start_layer: int = 1) -> list[dict]:
    """Peak memory of one training step, full model vs pyramid; rows with :data:`MEMORY_KEYS`."""
    rows = []
    for config in configs:
        full = train_step_peak_mb(config, seq_len, batch_size, None, 1.0, start_layer)
        for name in selectors:
            for r in retentions:
                pyr = train_step_peak_mb(config, seq_len, batch_size, name, r, start_layer)
                row = {"config": config, "seq_len": seq_len, "batch_size": batch_size, "selector": name,
                       "retention": float(r), "full_mb": round(full, 1), "pyramid_mb": round(pyr, 1),
                       "memory_ratio": round(pyr / full, 3) if full > 0 else float("nan")}
                rows.append(row)
    return rows
