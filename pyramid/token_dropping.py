"""Token Dropping: importance per vocabulary id from the MLM loss; drop in the middle, rejoin at the end.

Hou et al., ACL 2022 (methods.md section 4). A **pre-training** method: here it is used at inference
on a fine-tuned model, which is a project adaptation ([UNCONFIRMED] as a paper setting, 4 "Scope").

* Importance (4.2): a table ``I`` over the vocabulary, initialised to 10; after each step, for every
  masked position with target id ``v`` and cross-entropy ``c``: ``I[v] <- beta I[v] + (1 - beta) c``
  with ``beta = 0.995`` (with duplicate ids in a batch one write wins, as in the authors' scatter).
  [UNK], [CLS], [SEP], [MASK] are set to +1e4 (always kept), [PAD] to -1e4.
* The default model ships no MLM head, so one is fitted on the frozen encoder first: transform
  (dense d -> d, GELU, LayerNorm) and a decoder tied to the word embeddings plus a bias, BERT's
  ``BertLMPredictionHead`` layout. Masking: 15% of the non-special tokens, 80% [MASK], 10% random,
  10% unchanged. The table is then filled by a second pass with the head fixed (project choice: the
  authors update it during pre-training, while the head itself learns).
* Routing (4.1), for L layers: the first ``L/2 - 1`` layers see every token; after layer
  ``L/2 - 1`` the ``ceil(rho n)`` most important tokens by ``I[input_id]`` stay (rho = the keep
  fraction, the schedule's retention); the middle layers see only them; before the last layer the
  dropped tokens rejoin with their states from the output of layer ``L/2 - 1``, and the last layer
  sees the full sequence. The authors' middle "cross" layer (important queries, all keys) is not
  implemented: the middle layers attend among important tokens only.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from .artifacts import JsonConfig, files_table, key_value_rows, require_files, resolve_artifact
from .classifier import ASSETS_DIR
from .loading import LoadedEncoder

TOKEN_DROPPING_DIR = ASSETS_DIR / "token_dropping"
DEFAULT_TOKEN_DROPPING = "minilm-mlm-importance"
TD_FILES = ("importance.safetensors", "token_dropping_config.json")
BETA = 0.995
INIT_VALUE = 10.0
ALWAYS_KEEP = 1e4
ALWAYS_DROP = -1e4


class TokenDroppingLoadError(ValueError):
    """A Token Dropping artifact is missing, incomplete or corrupt."""


def drop_layer(num_layers: int) -> int:
    """The layer after whose output tokens are dropped: ``L/2 - 1`` (at least 1); methods.md 4.1."""
    return max(1, num_layers // 2 - 1)


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


def update_importance(table: torch.Tensor, target_ids: torch.Tensor, losses: torch.Tensor, beta: float = BETA) -> None:
    """``I[v] <- beta I[v] + (1 - beta) c`` for each (target id v, loss c), in place (methods.md 4.2).

    With duplicate ids one write wins (the authors' scatter update), here the last.
    """
    table[target_ids] = beta * table[target_ids] + (1 - beta) * losses


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
class TokenDroppingConfig(JsonConfig):
    """The importance table's provenance (``token_dropping_config.json``)."""

    name: str
    base_model: str
    vocab_size: int
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)


@dataclass
class TokenDroppingSettings:
    """Settings of one run of ``train-token-dropping`` (recorded in the model card).

    Attributes:
        data: labelled or unlabelled TSV/CSV files whose text column is used (SST-2 train, IMDB).
        out, name: artifact folder and name.
        limit: texts per file (None = all). max_length: truncation in tokens.
        head_steps: MLM-head training steps; batch_size; lr (AdamW). table_passes: passes of the
            importance pass over the texts. seed. command.
    """

    data: Sequence[str]
    out: str
    name: str = DEFAULT_TOKEN_DROPPING
    limit: int | None = 20000
    max_length: int = 128
    head_steps: int = 600
    batch_size: int = 32
    lr: float = 1e-3
    table_passes: int = 1
    seed: int = 0
    command: str = ""


def _read_texts(paths: Sequence[str], limit: int | None, rng: random.Random) -> list[str]:
    from .data import read_texts

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

    Writes ``importance.safetensors`` (the ``(V,)`` table), ``token_dropping_config.json`` and
    ``README.md`` into ``settings.out``.

    Returns:
        ``(table (V,) float32, config)``.

    Raises:
        DataError: unreadable data.
    """
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    from .batching import encode_texts, pad_batch, pad_id_of

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
        m_ids, pick = mask_tokens(batch.input_ids, batch.attention_mask, special, mask_id, V, gen)
        with torch.no_grad():
            h = model(input_ids=m_ids, attention_mask=batch.attention_mask).last_hidden_state  # (B, N, d)
        logits = head(h[pick])  # (M, V)
        return nn.functional.cross_entropy(logits, batch.input_ids[pick], reduction="none"), batch.input_ids[pick]

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
    seen = torch.zeros(V, dtype=torch.long)
    table_loss = []
    with torch.no_grad():
        for _ in range(n_batches):
            loss, target = masked_losses(next(stream))
            update_importance(table, target, loss)
            seen[target] += 1
            table_loss.append(float(loss.mean()))
            bar.update(1)
    bar.close()
    table[special] = ALWAYS_DROP
    table[torch.tensor(allow)] = ALWAYS_KEEP
    config = TokenDroppingConfig(
        name=s.name, base_model=encoder.name, vocab_size=V,
        training={**asdict(s), "data": list(s.data), "texts": len(ids), "beta": BETA, "init_value": INIT_VALUE,
                  "train_seconds": round(time.perf_counter() - t0, 1), "torch": torch.__version__},
        metrics={"mlm_loss_first_50_steps": round(sum(history[:50]) / max(1, len(history[:50])), 3),
                 "mlm_loss_last_50_steps": round(sum(history[-50:]) / max(1, len(history[-50:])), 3),
                 "mlm_loss_table_pass": round(sum(table_loss) / max(1, len(table_loss)), 3),
                 "vocabulary_ids_updated": int((seen > 0).sum())},
    )
    out = Path(s.out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({"importance": table.contiguous()}, str(out / "importance.safetensors"))
    (out / "token_dropping_config.json").write_text(config.to_json() + "\n", encoding="utf-8")
    (out / "README.md").write_text(model_card(config, out, encoder, table), encoding="utf-8")
    return table, config


def model_card(config: TokenDroppingConfig, folder: Path, encoder: LoadedEncoder, table: torch.Tensor) -> str:
    """The README of an importance-table artifact, with the most and least important word pieces."""
    t = config.training
    tok = encoder.tokenizer
    ordinary = table.clone()
    ordinary[(table >= ALWAYS_KEEP) | (table <= ALWAYS_DROP) | (table == INIT_VALUE)] = float("nan")
    valid = torch.nan_to_num(ordinary, nan=float("-inf"))
    top = tok.convert_ids_to_tokens(torch.topk(valid, 15).indices.tolist())
    low = tok.convert_ids_to_tokens(torch.topk(torch.nan_to_num(-ordinary, nan=float("-inf")), 15).indices.tolist())
    rows = key_value_rows(t, skip=("command", "out"))
    metrics = key_value_rows(config.metrics)
    files = files_table(folder)
    return f"""# {config.name}: Token Dropping importance table for `{config.base_model}`

One number per vocabulary id ({config.vocab_size}): an exponential moving average (beta {BETA}, start {INIT_VALUE})
of the masked-language-model loss of that id (methods.md 4.2). [UNK], [CLS], [SEP], [MASK] = +1e4 (always
kept), other special ids = -1e4. Ids never seen keep the start value {INIT_VALUE}.

The default model ships no MLM head, so one was fitted first on the **frozen** encoder (dense + GELU +
LayerNorm, decoder tied to the word embeddings, BERT masking 15% / 80-10-10) and then held fixed while the
table was filled. Token Dropping is a **pre-training** method; Pyramid Lens uses the table at inference
(a project adaptation).

Highest importance (hardest to predict): {', '.join(f'`{x}`' for x in top)}

Lowest importance (easiest): {', '.join(f'`{x}`' for x in low)}

## Data
{', '.join(f'`{d}`' for d in t.get('data', []))} (texts only, shuffled with seed {t.get('seed')}, at most
{t.get('limit')} per file, truncated to {t.get('max_length')} tokens).

## Metrics
| metric | value |
|---|---|
{metrics}

## Hyper-parameters
| name | value |
|---|---|
{rows}

## Command
    {t.get('command') or 'python -m pyramid train-token-dropping'}

## Files
| file | size |
|---|---|
{files}
"""


def resolve_token_dropping_path(name: str | Path) -> Path:
    """A shipped artifact's name or a folder -> the folder (raises :class:`TokenDroppingLoadError`)."""
    return resolve_artifact(name, TOKEN_DROPPING_DIR, "Token Dropping table", "python -m pyramid train-token-dropping",
                            TokenDroppingLoadError)


@lru_cache(maxsize=8)
def load_importance(name: str | Path = DEFAULT_TOKEN_DROPPING) -> tuple[torch.Tensor, TokenDroppingConfig]:
    """Load an importance table ``(V,)`` and its config (cached).

    Raises:
        TokenDroppingLoadError: missing, incomplete or corrupt artifact.
    """
    path = resolve_token_dropping_path(name)
    require_files(path, TD_FILES, "Token Dropping", TokenDroppingLoadError)
    try:
        from safetensors.torch import load_file

        config = TokenDroppingConfig.from_json((path / "token_dropping_config.json").read_text(encoding="utf-8"))
        table = load_file(str(path / "importance.safetensors"))["importance"].float()
    except Exception as exc:  # noqa: BLE001
        raise TokenDroppingLoadError(f"Could not load the Token Dropping table '{path}': {exc}") from exc
    if table.shape != (config.vocab_size,):
        raise TokenDroppingLoadError(f"'{path}': the table has shape {tuple(table.shape)}, expected ({config.vocab_size},)")
    return table, config
