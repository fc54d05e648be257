#!/usr/bin/env bash
# Recompute every result file the Benchmarks page reads (assets/results/). Run from the project
# root with ../shared/data beside it. On 2 CPU cores: SST-2 dev ~3 min per head, IMDB (600 reviews;
# IMDB_LIMIT=N for fewer) ~12 min per head, bench ~8 min. Set HEADS or DATASETS to do part of it.
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
    python -m pyramid evaluate --data "$file" --head "$head" --batch-size $bs "${limit[@]}" \
      --selectors coreset,attention,random,first-k --retention 1.0,0.5,0.3,0.2,0.1 \
      --out "assets/results/eval__${ds}__${head}.csv"
  done
done
if [ -z "${SKIP_BENCH:-}" ]; then
  python -m pyramid bench --memory --out assets/results/bench.json
fi
