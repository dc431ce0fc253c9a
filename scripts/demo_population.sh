#!/usr/bin/env bash
# Train a PBT population on the embedded CPU task PuckPush-v0, one process per member, show the
# population while it trains, and print the final table and every replacement.
#
#   bash scripts/demo_population.sh [N=4] [FOLDER=pbt_demo/<timestamp>] [EPOCHS=250]
#
# Members start a decade apart in learning rate (1e-4 .. 3e-3) and with two entropy and discount
# settings, as one would spread a first population: on this task those choices decide how far a
# member climbs the curriculum, so PBT has something to win. Watch the slow members take a
# leader's weights and mutated values. Runs `python -m isaaclab_pbt`, so it trains with whichever
# isaaclab_pbt is installed (the checkout, editable, or a wheel).
set -euo pipefail
N=${1:-4}
DIR=${2:-pbt_demo/$(date +%Y-%m-%d_%H-%M-%S)}
EPOCHS=${3:-250}
START=("1e-4 0.0 0.99" "3e-4 0.01 0.95" "1e-3 0.0 0.95" "3e-3 0.01 0.99")
mkdir -p "$DIR"

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' INT TERM EXIT
for ((i = 0; i < N; i++)); do
  read -r lr entropy gamma <<<"${START[$((i % ${#START[@]}))]}"
  OMP_NUM_THREADS=1 python -m isaaclab_pbt train --task=PuckPush-v0 --headless --seed="$i" --max_iterations="$EPOCHS" \
    agent.pbt.enabled=True agent.pbt.num_policies="$N" agent.pbt.policy_idx="$i" \
    agent.pbt.directory="$DIR" agent.pbt.workspace=ws agent.params.config.learning_rate="$lr" \
    agent.params.config.entropy_coef="$entropy" agent.params.config.gamma="$gamma" \
    >"$DIR/member$i.log" 2>&1 &
  pids+=($!)
  echo "member $i: pid $! learning_rate=$lr entropy_coef=$entropy gamma=$gamma log $DIR/member$i.log"
done

status=0
waiting_said=""
while true; do
  sleep 10
  running=0
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && running=$((running + 1)); done
  [[ $running -eq 0 ]] && break
  echo "--- $running of $N members training ($(date +%T))"
  # a member's history appears with its first record: until then there is nothing to show, and nothing wrong
  if compgen -G "$DIR/ws/[0-9][0-9][0-9]*/history.jsonl" >/dev/null; then
    python -m isaaclab_pbt status "$DIR/ws" || true
  elif [[ -z $waiting_said ]]; then
    echo "waiting for the first records (each member publishes at the end of its first PBT interval)"
    waiting_said=1
  fi
done
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then echo "member $i failed, see $DIR/member$i.log"; status=1; fi
done
trap - INT TERM EXIT

echo; echo "PBT decisions:"
grep -h "in place\|restarting" "$DIR"/member*.log || echo "(no replacement this run)"
echo
python -m isaaclab_pbt status "$DIR/ws"
python -m isaaclab_pbt plot "$DIR/ws"  # into $DIR/ws/plots/population.png
exit $status
