#!/usr/bin/env bash
# Recompute every result file the Benchmarks page reads (assets/results/). Run from the project
# root with ../shared/data beside it. On 2 CPU cores: SST-2 dev ~3 min per head, IMDB (600 reviews;
# IMDB_LIMIT=N for fewer) ~12 min per head, saliency report ~3 min, bench ~8 min. Set HEADS or
# DATASETS to do part of it; SKIP_SALIENCY=1 or SKIP_BENCH=1 to leave those out.
set -euo pipefail
HEADS=${HEADS:-"sst2-lora sst2-lora-pyramid"}
DATASETS=${DATASETS:-"sst2-dev imdb-dev"}
DATA=${DATA:-../shared/data}
IMDB_LIMIT=${IMDB_LIMIT:-}
mkdir -p assets/results
for head in $HEADS; do
  for ds in $DATASETS; do
    case $ds in
      sst2-dev) file=$DATA/sst2/dev.tsv; bs=32; limit=() ;;
      imdb-dev) file=$DATA/imdb/dev.csv; bs=8; limit=(); [ -n "$IMDB_LIMIT" ] && limit=(--limit "$IMDB_LIMIT") ;;
    esac
    selectors=coreset,attention,random,first-k
    [ -d assets/token_dropping/minilm-mlm-importance ] && selectors="$selectors,token-dropping"
    # The learned selectors' weights belong to sst2-lora (bash scripts/make_artifacts.sh trains them).
    if [ "$head" = sst2-lora ]; then
      [ -d assets/adapler/sst2-lora-adapler ] && selectors="$selectors,adapler"
      [ -d assets/trbert/sst2-lora-trbert ] && selectors="$selectors,trbert"
    fi
    retention=1.0,0.5,0.3,0.2,0.1
    # Lower retentions reach the learned selectors' speedups (for the matched-speedup comparison).
    [ "$head" = sst2-lora ] && [ "$ds" = sst2-dev ] && retention="$retention,0.05,0.03"
    python -m pyramid evaluate --data "$file" --head "$head" --batch-size $bs "${limit[@]}" \
      --selectors "$selectors" --retention "$retention" \
      --out "assets/results/eval__${ds}__${head}.csv"
  done
done
if [ -z "${SKIP_SALIENCY:-}" ] && [ -d assets/adapler/sst2-lora-adapler ]; then
  python -m pyramid saliency-report --data "$DATA/sst2/dev.tsv" --head sst2-lora \
    --out assets/results/saliency__sst2-dev__sst2-lora.csv
fi
if [ -z "${SKIP_BENCH:-}" ]; then
  python -m pyramid bench --memory --repeats 9 --out assets/results/bench.json
fi
