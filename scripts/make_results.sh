#!/usr/bin/env bash
# Recompute every result file the Benchmarks page reads (assets/results/). Run from the project root
# with ../shared/data beside it. On 2 CPU cores: SST-2 dev ~10 min (every selector, both regimes),
# IMDB (600 reviews; IMDB_LIMIT=N for fewer) ~40 min, saliency report ~5 min, bench ~15 min. Set
# DATASETS to do part of it; SKIP_SALIENCY=1 or SKIP_BENCH=1 to leave those out.
set -euo pipefail
DATASETS=${DATASETS:-"sst2-dev imdb-dev"}
DATA=${DATA:-../shared/data}
IMDB_LIMIT=${IMDB_LIMIT:-}
mkdir -p assets/results
# Every selector that runs on the default model (the same answer as the app's); those with no Train-Select
# model installed get their inference-only rows (evaluate says which).
SELECTORS=$(python -c "from pyramid.selectors import usable_selectors as u; print(','.join(u()))")
for ds in $DATASETS; do
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
