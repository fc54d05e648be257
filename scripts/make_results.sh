#!/usr/bin/env bash
# Recompute every result file the Benchmarks page reads (assets/results/). Run from the project root
# with ../shared/data beside it. On 2 CPU cores: SST-2 dev ~10 min (every selector, both regimes),
# IMDB (600 reviews; IMDB_LIMIT=N for fewer) ~40 min, BBC News ~5 min (it needs the minilm-bbc-news
# classifier in the model cache: `python scripts/train_bbc.py`, ~35 min, is run first when it is missing),
# saliency report ~5 min, bench ~15 min. Set DATASETS to do part of it; SKIP_SALIENCY=1 or SKIP_BENCH=1 to
# leave those out. Every row carries its 95% interval and per-example correctness (docs/methods.md 9).
set -euo pipefail
DATASETS=${DATASETS:-"sst2-dev imdb-dev bbc-dev"}
BBC_MODEL=${BBC_MODEL:-$HOME/.cache/pyramid-lens/models/minilm-bbc-news}
DATA=${DATA:-../shared/data}
IMDB_LIMIT=${IMDB_LIMIT:-}
mkdir -p assets/results
# Every selector that runs on the default model (the same answer as the app's); those with no Train-Select
# model installed get their inference-only rows (evaluate says which).
SELECTORS=$(python -c "from pyramid.plan import usable_selectors as u; print(','.join(u()))")
for ds in $DATASETS; do
  if [ "$ds" = bbc-dev ]; then
    # Long documents, five topics: a user's own classifier (a standard AutoModelForSequenceClassification made
    # with transformers' Trainer), every fixed-schedule selector that runs on it, inference-only.
    [ -f "$BBC_MODEL/config.json" ] || python scripts/train_bbc.py --out "$BBC_MODEL"
    python -m pyramid evaluate --model "$BBC_MODEL" --data "$DATA/bbc/dev.csv" --regime inference --batch-size 16 \
      --selectors coreset,attention,random,first-k,tome,coreset-pool --retention 1.0,0.5,0.3,0.2,0.1,0.05 \
      --out assets/results/eval__bbc-dev.csv
    continue
  fi
  case $ds in
    sst2-dev) file=$DATA/sst2/dev.tsv; bs=32; limit=() ;;
    imdb-dev) file=$DATA/imdb/dev.csv; bs=8; limit=(); [ -n "$IMDB_LIMIT" ] && limit=(--limit "$IMDB_LIMIT") ;;
  esac
  python -m pyramid evaluate --data "$file" --regime both --batch-size $bs "${limit[@]}" \
    --selectors "$SELECTORS" --retention 1.0,0.5,0.3,0.2,0.1,0.05 --out "assets/results/eval__${ds}.csv"
  # Pyramid-BERT's own setting (fine-tuned from the pre-trained model at a fixed rho), for reference.
  python -m pyramid evaluate --data "$file" --regime inference --head sst2-lora-pyramid --batch-size $bs \
    "${limit[@]}" --selectors coreset --retention 1.0,0.5,0.3,0.2,0.1 --out "assets/results/eval__${ds}__sst2-lora-pyramid.csv"
done
if [ -z "${SKIP_SALIENCY:-}" ]; then
  python -m pyramid saliency-report --data "$DATA/sst2/dev.tsv" --head sst2-lora \
    --out assets/results/saliency__sst2-dev__sst2-lora.csv
fi
if [ -z "${SKIP_BENCH:-}" ]; then
  python -m pyramid bench --memory --repeats 9 --out assets/results/bench.json
fi
