"""Building Token Dropping's importance table (Hou et al., ACL 2022; docs/methods.md 4.2).

The default model ships no MLM head, so one is fitted on the frozen encoder first: transform (dense
d -> d, GELU, LayerNorm) and a decoder tied to the word embeddings plus a bias, BERT's
``BertLMPredictionHead`` layout. Masking: 15% of the non-special tokens, 80% [MASK], 10% random,
10% unchanged. The table is then filled by a second pass with the head fixed (project choice: the
authors update it during pre-training, while the head itself learns):

    I[v] <- beta I[v] + (1 - beta) c          (beta = 0.995, I starts at 10)

for every masked position with target id ``v`` and cross-entropy ``c`` (with duplicate ids in a batch
one write wins, as in the authors' scatter update). Bias correction (project addition, like Adam's):
after ``m`` updates of id ``v`` the table holds ``10 beta^m + (1 - beta) sum_k beta^(m-k) c_k``, so
``I_hat = (I - 10 beta^m) / (1 - beta^m)`` is the weighted mean of its losses; without it an id seen
a few times stays near the start value 10 and the table ranks tokens by rarity. Ids never seen keep
the start value 10 (the authors' value for ids not yet updated). [UNK], [CLS], [SEP], [MASK] are
set to +1e4 (always kept), other special ids to -1e4.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ..core.loading import LoadedEncoder
from ..core.schedule import config_dims, cross_layer_flops, layer_flops
from ..core.selectors.token_dropping import (ALWAYS_DROP, ALWAYS_KEEP, BETA, DEFAULT_TOKEN_DROPPING, INIT_VALUE,
                                        TOKEN_DROPPING_DIR, TokenDroppingConfig, drop_layer)
from .. import argtypes as at
from .common import BBC_TRAIN, DEFAULT_TRAIN, DEVICE_HELP, ModelCard, TrainerCommand, comma_strings, on_device, option


class MLMHead(nn.Module):
    """BERT's MLM prediction head with the decoder tied to the word embeddings.

    ``logits = LayerNorm(GELU(h W^T + b)) E^T + bias``.

    Args:
        word_embeddings: the encoder's ``nn.Embedding`` (shared, not trained here).
        layer_norm_eps: the encoder config's epsilon.
    """

    def __init__(self, word_embeddings: nn.Embedding, layer_norm_eps: float = 1e-12):
        super().__init__()
        d = word_embeddings.weight.shape[1]
        self.dense = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d, eps=layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(word_embeddings.weight.shape[0]))
        self.word_embeddings = [word_embeddings]  # a list: not registered, so not saved or trained

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``(M, d)`` states -> ``(M, V)`` logits."""
        h = self.norm(nn.functional.gelu(self.dense(hidden)))
        return h @ self.word_embeddings[0].weight.detach().T + self.bias


def mask_tokens(input_ids: torch.Tensor, attention_mask: torch.Tensor, special: torch.Tensor, mask_id: int,
                vocab_size: int, generator: torch.Generator, rate: float = 0.15) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking: ``rate`` of the real non-special tokens become targets; of those 80% [MASK],
    10% a random id, 10% unchanged.

    Returns:
        ``(masked ids (B, N), targets (B, N) bool)``.
    """
    cand = attention_mask.bool() & ~special[input_ids]
    pick = (torch.rand(input_ids.shape, generator=generator) < rate) & cand
    roll = torch.rand(input_ids.shape, generator=generator)
    ids = input_ids.clone()
    ids[pick & (roll < 0.8)] = mask_id
    rand = pick & (roll >= 0.8) & (roll < 0.9)
    ids[rand] = torch.randint(0, vocab_size, (int(rand.sum()),), generator=generator)
    return ids, pick


def update_importance(table: torch.Tensor, updates: torch.Tensor, target_ids: torch.Tensor, losses: torch.Tensor,
                      beta: float = BETA) -> None:
    """``I[v] <- beta I[v] + (1 - beta) c`` for each (target id v, loss c), in place (docs/methods.md 4.2);
    ``updates[v] += 1`` once per batch for each id written.

    With duplicate ids one write wins (the authors' scatter update), here the last.
    """
    table[target_ids] = beta * table[target_ids] + (1 - beta) * losses
    updates[torch.unique(target_ids)] += 1


def bias_corrected(table: torch.Tensor, updates: torch.Tensor, beta: float = BETA,
                   init: float = INIT_VALUE) -> torch.Tensor:
    """``I_hat = (I - init beta^m) / (1 - beta^m)`` where ``m = updates > 0``; ``init`` elsewhere (module docstring)."""
    m = updates.double()
    decay = torch.pow(torch.tensor(beta, dtype=torch.float64), m)
    corrected = (table.double() - init * decay) / (1.0 - decay).clamp_min(1e-12)
    return torch.where(updates > 0, corrected, torch.full_like(corrected, init)).float()


def special_table(encoder: LoadedEncoder) -> tuple[torch.Tensor, list[int]]:
    """``(special (V,) bool, allow-list ids)``: the tokenizer's special ids, and [UNK] [CLS] [SEP] [MASK]."""
    tok = encoder.tokenizer
    V = encoder.config.vocab_size
    special = torch.zeros(V, dtype=torch.bool)
    for i in tok.all_special_ids:
        if 0 <= i < V:
            special[i] = True
    allow = [i for i in (tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id) if i is not None]
    return special, allow


@dataclass
class TokenDroppingSettings:
    """Settings of one run of ``train-token-dropping`` (recorded in the model card)."""

    data: tuple[str, ...] = option((DEFAULT_TRAIN, BBC_TRAIN),
                                   "comma-separated TSV/CSV files whose text column is used (training text only: "
                                   "SST-2 train for short sentences, BBC train for long documents)",
                                   parse=comma_strings)
    name: str = option(DEFAULT_TOKEN_DROPPING, "artifact name")
    out: str | None = option(None, "artifact folder (default assets/token_dropping/NAME)")
    limit: int | None = option(20000, "texts per file (0 = all)", parse=at.limit_or_all)
    max_length: int = option(128, "truncation in tokens", parse=at.max_length)
    head_steps: int = option(600, "MLM-head training steps", parse=at.int_at_least(1, "--head-steps"))
    batch_size: int = option(32, "texts per step", parse=at.int_at_least(1, "--batch-size"))
    lr: float = option(1e-3, "MLM-head learning rate (AdamW)", parse=at.positive_float)
    table_passes: int = option(1, "passes over the texts to fill the table", parse=at.int_at_least(1, "--table-passes"))
    seed: int = option(0, "shuffling, masking and initialisation", parse=at.seed)
    device: str = option("cpu", DEVICE_HELP, parse=at.device)
    command: str = option("", "the command line that ran this", cli=False)


def _read_texts(paths: Sequence[str], limit: int | None, rng: random.Random) -> list[str]:
    from ..data import read_texts

    texts = []
    for path in paths:
        rows = read_texts(path)
        rng.shuffle(rows)
        texts += rows[:limit] if limit else rows
    rng.shuffle(texts)
    return texts


def train_token_dropping(encoder: LoadedEncoder, settings: TokenDroppingSettings, *,
                         progress: bool = True) -> tuple[torch.Tensor, TokenDroppingConfig]:
    """Fit an MLM head on the frozen encoder, then build the importance table; write the artifact.

    Writes ``importance.safetensors`` (the ``(V,)`` corrected table, the raw EMA and the update counts), ``token_dropping_config.json`` and
    ``README.md`` into ``settings.out``.

    Returns:
        ``(table (V,) float32, config)``.

    Raises:
        DataError: unreadable data.
    """
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    from ..batching import encode_texts, pad_batch, pad_id_of

    s = settings
    torch.manual_seed(s.seed)
    rng = random.Random(s.seed)
    gen = torch.Generator().manual_seed(s.seed)
    texts = _read_texts(s.data, s.limit, rng)
    ids = encode_texts(encoder, texts, s.max_length)
    model = encoder.model
    V = encoder.config.vocab_size
    special, allow = special_table(encoder)
    mask_id = encoder.tokenizer.mask_token_id
    pad = pad_id_of(encoder)
    head = MLMHead(model.embeddings.word_embeddings, encoder.config.layer_norm_eps)
    opt = torch.optim.AdamW(head.parameters(), lr=s.lr, weight_decay=0.01)
    t0 = time.perf_counter()

    def batches():
        while True:
            order = list(range(len(ids)))
            rng.shuffle(order)
            for b0 in range(0, len(order) - s.batch_size + 1, s.batch_size):
                yield pad_batch([ids[i] for i in order[b0: b0 + s.batch_size]], pad)

    def masked_losses(batch):
        """``(losses (M,) on the device, target ids (M,) on the CPU)``; the masking draws on the CPU (seeded)."""
        m_ids, pick = mask_tokens(batch.input_ids, batch.attention_mask, special, mask_id, V, gen)
        target = batch.input_ids[pick]  # (M,)
        with torch.no_grad():
            h = model(input_ids=m_ids.to(device), attention_mask=batch.attention_mask.to(device)).last_hidden_state
        logits = head(h[pick.to(device)])  # (M, V)
        return nn.functional.cross_entropy(logits, target.to(device), reduction="none"), target

    with on_device(s.device, model, head) as device:
        stream = batches()
        bar = tqdm(total=s.head_steps, desc="MLM head", unit="step", disable=not progress)
        history = []
        for step in range(s.head_steps):
            loss, _ = masked_losses(next(stream))
            opt.zero_grad(set_to_none=True)
            loss.mean().backward()
            opt.step()
            history.append(float(loss.detach().mean()))
            bar.update(1)
            bar.set_postfix(loss=f"{history[-1]:.3f}")
        bar.close()
        head.eval()

        table = torch.full((V,), INIT_VALUE)
        n_batches = math.floor(len(ids) / s.batch_size) * s.table_passes
        bar = tqdm(total=n_batches, desc="importance table", unit="batch", disable=not progress)
        updates = torch.zeros(V, dtype=torch.long)
        table_loss = []
        with torch.no_grad():
            for _ in range(n_batches):
                loss, target = masked_losses(next(stream))
                update_importance(table, updates, target, loss.cpu())
                table_loss.append(float(loss.mean()))
                bar.update(1)
        bar.close()
    raw = table.clone()
    near_start = float(((raw - INIT_VALUE).abs() <= 0.25).float().mean())
    table = bias_corrected(raw, updates)
    table[special] = ALWAYS_DROP
    table[torch.tensor(allow)] = ALWAYS_KEEP
    config = TokenDroppingConfig(
        name=s.name, base_model=encoder.name, vocab_size=V,
        training={**asdict(s), "data": list(s.data), "texts": len(ids), "beta": BETA, "init_value": INIT_VALUE,
                  "train_seconds": round(time.perf_counter() - t0, 1), "torch": torch.__version__},
        metrics={"mlm_loss_first_50_steps": round(sum(history[:50]) / max(1, len(history[:50])), 3),
                 "mlm_loss_last_50_steps": round(sum(history[-50:]) / max(1, len(history[-50:])), 3),
                 "mlm_loss_table_pass": round(sum(table_loss) / max(1, len(table_loss)), 3),
                 "vocabulary_ids_updated": int((updates > 0).sum()),
                 "share_of_ids_within_0.25_of_the_start_value_before_correction": round(near_start, 4),
                 "pretraining_encoder_flops_ratio_bert_base_512": round(pretraining_flops_ratio(_bert_base()), 3),
                 "pretraining_encoder_flops_ratio_this_model_512": round(pretraining_flops_ratio(encoder.config), 3)},
    )
    out = Path(s.out or TOKEN_DROPPING_DIR / s.name)
    out.mkdir(parents=True, exist_ok=True)
    save_file({"importance": table.contiguous(), "raw": raw.contiguous(), "updates": updates.contiguous()},
              str(out / "importance.safetensors"))
    (out / "token_dropping_config.json").write_text(config.to_json() + "\n", encoding="utf-8")
    model_card(config, encoder, table).write(out)
    return table, config


def pretraining_flops_ratio(config, seq_len: int = 512, keep: float = 0.5) -> float:
    """Encoder FLOPs of one Token Dropping pre-training step over the full model's (docs/methods.md 4.3).

    Routing of docs/methods.md 4.1 with ``k = keep * seq_len`` important tokens: layers 1..L/2-1 on
    every token, the cross layer L/2 with k queries over all keys and values, layers L/2+1..L-1 on
    k tokens, the last layer on every token. BERT-base at 512 tokens and keep 0.5 gives ~0.75, the
    paper's 25% saving.
    """
    L = int(config.num_hidden_layers)
    d, f, h = config_dims(config)
    k = math.ceil(keep * seq_len)
    j0 = drop_layer(L)  # last layer on every token before the drop
    cost = 0.0
    for j in range(1, L + 1):
        if j <= j0 or j == L:
            cost += layer_flops(seq_len, d, f, h)
        elif j == j0 + 1:
            cost += cross_layer_flops(k, seq_len, d, f, h)
        else:
            cost += layer_flops(k, d, f, h)
    return cost / (L * layer_flops(seq_len, d, f, h))


def _bert_base():
    from transformers import BertConfig

    return BertConfig()


def model_card(config: TokenDroppingConfig, encoder: LoadedEncoder, table: torch.Tensor) -> ModelCard:
    """The model card of an importance table, with the most and least important word pieces."""
    t = config.training
    tok = encoder.tokenizer
    ordinary = table.clone()
    ordinary[(table >= ALWAYS_KEEP) | (table <= ALWAYS_DROP) | (table == INIT_VALUE)] = float("nan")
    top = tok.convert_ids_to_tokens(torch.topk(torch.nan_to_num(ordinary, nan=float("-inf")), 15).indices.tolist())
    low = tok.convert_ids_to_tokens(torch.topk(torch.nan_to_num(-ordinary, nan=float("-inf")), 15).indices.tolist())
    m = config.metrics
    return ModelCard(
        title=f"{config.name}: Token Dropping importance table for `{config.base_model}`",
        summary=(f"One number per vocabulary id ({config.vocab_size}): the bias-corrected exponential moving average "
                 f"(beta {BETA}, start {INIT_VALUE}) of the masked-language-model loss of that id (docs/methods.md 4.2). "
                 "[UNK], [CLS], [SEP], [MASK] = +1e4 (always kept), other special ids = -1e4; ids never seen keep the "
                 f"start value {INIT_VALUE}.\n\nHighest importance (hardest to predict): "
                 + ", ".join(f"`{x}`" for x in top) + "\n\nLowest importance (easiest): " + ", ".join(f"`{x}`" for x in low)),
        method=("The default model ships no MLM head, so one was fitted first on the **frozen** encoder (dense + GELU + "
                "LayerNorm, decoder tied to the word embeddings, BERT masking 15% / 80-10-10) and then held fixed while "
                "the table was filled (the authors update the table during pre-training). Bias correction "
                "I_hat = (I - 10 beta^m) / (1 - beta^m) with m the updates of the id (a project addition: before it, "
                f"{100 * m.get('share_of_ids_within_0.25_of_the_start_value_before_correction', 0):.0f}% of the ids were "
                "within 0.25 of the start value and the table mostly ranked tokens by rarity).\n\n"
                "Token Dropping is a **pre-training** method: its paper's claim is pre-training compute. With its "
                "routing (all tokens through the first L/2 - 1 layers, half of them as queries of the middle cross "
                "layer and through the next ones, all of them through the last) one 512-token MLM step's encoder "
                f"costs {m.get('pretraining_encoder_flops_ratio_bert_base_512', 0):.2f} of the full model's FLOPs on "
                f"BERT-base (the paper's 25% saving) and {m.get('pretraining_encoder_flops_ratio_this_model_512', 0):.2f} "
                "on this model. Pyramid Lens uses the table at inference and for Train-Select fine-tuning."),
        data=(", ".join(f"`{d}`" for d in t.get("data", [])) + f" (texts only, shuffled with seed {t.get('seed')}, at most "
              f"{t.get('limit')} per file, truncated to {t.get('max_length')} tokens)."),
        metrics=m, hyper={k: v for k, v in t.items() if k not in ("command", "out", "data")},
        command=t.get("command", ""),
        limits="The MLM head was fitted on a sentence-embedding model whose states predict words poorly (see the loss).",
    )


def run(settings: TokenDroppingSettings, base: LoadedEncoder, progress: bool = True) -> dict:
    """``python -m pyramid train-token-dropping``: build the table and return the JSON summary."""
    if not settings.data:
        raise ValueError("--data needs at least one file")
    if settings.head_steps < 1:
        raise ValueError("--head-steps must be at least 1")
    _, config = train_token_dropping(base, settings, progress=progress)
    return {"token_dropping": config.name, "metrics": config.metrics}


COMMAND = TrainerCommand(name="train-token-dropping",
                         help="fit an MLM head on the frozen encoder and build Token Dropping's importance table",
                         settings=TokenDroppingSettings, run=run)


