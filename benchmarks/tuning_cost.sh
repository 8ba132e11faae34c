#!/usr/bin/env bash
# What tuning parity costs: `mtl baselines` + `mtl train-mtl` untuned, then with tuning.trials 4,
# each in a fresh temporary project on the synthetic example (20 features, 2,000 training rows).
# Prints the wall time, the epochs trained and the trials pruned of each. About 2 minutes on 2 cores.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="$REPO/.venv/bin:$PATH" DVC_NO_ANALYTICS=1 PREFECT_SERVER_ANALYTICS_ENABLED=false GX_ANALYTICS_ENABLED=false
for trials in 0 4; do
  root=$(mktemp -d "${TMPDIR:-/tmp}/tuning-cost-XXXX")
  python - "$REPO" "$root" "$trials" <<'PY'
import sys, yaml
repo, root, trials = sys.argv[1], sys.argv[2], int(sys.argv[3])
raw = yaml.safe_load(open(f"{repo}/examples/synthetic/params.yaml"))
raw["data"]["synthetic"]["features"] = 20
raw["data"]["synthetic"]["rows"]["train"] = 2000
raw["tuning"]["trials"] = trials
yaml.safe_dump(raw, open(f"{root}/params.yaml", "w"))
PY
  (
    cd "$root"
    export MLFLOW_TRACKING_URI="sqlite:///$root/mlflow.db"
    mtl prepare --root . > /dev/null 2>&1
    start=$(date +%s.%N)
    mtl baselines --root . > log.txt 2>&1
    mtl train-mtl --root . >> log.txt 2>&1
    end=$(date +%s.%N)
    pruned=$(python -c "
import optuna
from pathlib import Path
url = 'sqlite:///optuna.db'
print(sum(t.state.name == 'PRUNED' for s in optuna.get_all_study_summaries(url)
          for t in optuna.load_study(study_name=s.study_name, storage=url).trials) if Path('optuna.db').exists() else 0)")
    echo "trials=$trials seconds=$(python -c "print(round($end - $start, 1))") epochs=$(grep -c '\] epoch ' log.txt) pruned=$pruned"
  )
  rm -rf "$root"
done
