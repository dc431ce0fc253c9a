#!/usr/bin/env bash
# Train a PBT population on the embedded CPU task (PointReach-v0), one process per member,
# show the population while it trains, and print the final table and every replacement.
#
#   bash scripts/demo_population.sh [N=4] [FOLDER=pbt_demo/<timestamp>] [EPOCHS=120]
#
# Members start with different learning rates, the last one stalled at 1e-8, so PBT has
# something to fix: watch it take a leader's weights and a mutated learning rate.
set -euo pipefail
N=${1:-4}
DIR=${2:-pbt_demo/$(date +%Y-%m-%d_%H-%M-%S)}
EPOCHS=${3:-120}
HERE=$(cd "$(dirname "$0")" && pwd)
LRS=(3e-3 1e-3 3e-4 1e-8)
mkdir -p "$DIR"

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' INT TERM EXIT
for ((i = 0; i < N; i++)); do
  lr=${LRS[$((i < ${#LRS[@]} ? i : ${#LRS[@]} - 1))]}
  [[ $i -eq $((N - 1)) ]] && lr=1e-8
  OMP_NUM_THREADS=1 python "$HERE/train.py" --headless --seed="$i" --max_iterations="$EPOCHS" \
    agent.pbt.enabled=True agent.pbt.num_policies="$N" agent.pbt.policy_idx="$i" \
    agent.pbt.directory="$DIR" agent.pbt.workspace=ws agent.params.config.learning_rate="$lr" \
    >"$DIR/member$i.log" 2>&1 &
  pids+=($!)
  echo "member $i: pid $! learning_rate=$lr log $DIR/member$i.log"
done

status=0
while true; do
  sleep 5
  running=0
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && running=$((running + 1)); done
  [[ $running -eq 0 ]] && break
  echo "--- $running of $N members training ($(date +%T))"
  python -m isaaclab_pbt status "$DIR/ws" || true
done
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then echo "member $i failed, see $DIR/member$i.log"; status=1; fi
done
trap - INT TERM EXIT

echo; echo "PBT decisions:"
grep -h "in place\|restarting" "$DIR"/member*.log || echo "(no replacement this run)"
echo
python -m isaaclab_pbt status "$DIR/ws"
exit $status
