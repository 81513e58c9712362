#!/usr/bin/env bash
# submit-job.sh: keeps Tailor's segmentation job running on the Flink session cluster of
# docker/docker-compose.yml (the command of its tailor-job service; the image's entrypoint has already
# written FLINK_PROPERTIES into the Flink client's configuration).
#
# Each round:
#   1. Ask the JobManager's REST API (FLINK_JOBMANAGER, default jobmanager:8081) for a job named
#      tailor-segmentation that is not terminal (not FINISHED, CANCELED, FAILED or SUSPENDED). There is
#      one: nothing to do. The API does not answer: nothing to do, try again next round.
#   2. Create Tailor's Kafka topics that are missing (`tailor topics create`; the broker does not
#      auto-create topics).
#   3. Decide what to resume from with Tailor's own start plan (stack/job_state.py plan_start, the contract
#      of `tailor job run`): the newest retained checkpoint or savepoint of this consumer group and state
#      layout under TAILOR_STATE_DIR (on the flink-data volume), or empty state at a first start. It
#      refuses, and nothing is submitted, when the only retained state is of another state layout, or when
#      the consumer group has committed offsets but no retained state (starting empty from those offsets
#      would count users twice); the reason says what to do instead.
#   4. Submit, detached:
#        flink run -m jobmanager:8081 -d [-s <checkpoint or savepoint dir>]
#          -py /opt/tailor/pipelines/segmentation_job.py -pyfs /opt/tailor -pyexec <venv python> -pyclientexec <same>
# Then sleep SUBMIT_CHECK_INTERVAL_S seconds (default 30) and start over; 0 runs one round and exits with
# its status. Without HA a restarted JobManager has forgotten its jobs: step 1 finds none and step 3
# resumes from the checkpoint the old job retained (RETAIN_ON_CANCELLATION).
#
# To keep the job stopped (maintenance, an upgrade through a savepoint), stop this service first
# (`docker compose stop tailor-job`), then the job (`flink stop`, which takes a savepoint); starting the
# service again resumes from that savepoint, the newest state.
#
# Options (each runs one round and exits):
#   --fresh    start with empty state and replay the events topic from its start (the job's
#              --from-earliest): the retained state is moved aside under
#              TAILOR_STATE_DIR/<consumer group>/discarded-<time>/, not deleted. Refused while the job
#              runs. For a refusal of step 3, once its cause is understood:
#                docker compose -f docker/docker-compose.yml run --rm tailor-job submit-job.sh --fresh
#   --dry-run  steps 3 and 4 only, printing the flink command instead of running it: no REST call, no
#              topic creation, nothing moved (with no retained state the plan still asks Kafka for the
#              group's committed offsets). Not with --fresh.
set -uo pipefail

JOBMANAGER="${FLINK_JOBMANAGER:-jobmanager:8081}"
INTERVAL_S="${SUBMIT_CHECK_INTERVAL_S:-30}"
PYTHON="${SUBMIT_PYTHON:-/opt/tailor-venv/bin/python}"
PROJECT_DIR="${SUBMIT_PROJECT_DIR:-/opt/tailor}"
JOB_PY="$PROJECT_DIR/pipelines/segmentation_job.py"

usage() { echo "usage: submit-job.sh [--fresh | --dry-run]" >&2; exit 2; }
DRY_RUN=false
FRESH=false
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=true ;;
    --fresh) FRESH=true ;;
    *) usage ;;
  esac
done
if $DRY_RUN && $FRESH; then usage; fi

log() { echo "submit-job: $*" >&2; }

# Exit status 0, printing the job's id and state: a tailor-segmentation job is not terminal; 1: there is
# none; 2: the REST API does not answer.
live_job() {
  "$PYTHON" - "http://$JOBMANAGER" <<'PY'
import sys

from connectors.flink_rest import TERMINAL_STATES, FlinkRest, FlinkRestError
from pipelines.state_layout import JOB_NAME

try:
    jobs = FlinkRest(sys.argv[1]).jobs()
except FlinkRestError as exc:
    print(f"submit-job: {exc}", file=sys.stderr)
    raise SystemExit(2) from None
live = [job for job in jobs if job.name == JOB_NAME and job.state not in TERMINAL_STATES]
for job in live:
    print(job.job_id, job.state)
raise SystemExit(0 if live else 1)
PY
}

# Tailor's start plan in one line: the checkpoint or savepoint directory to resume from ("-": empty
# state), a tab, "from-earliest" or "-". Exit status 3, with the reason on stderr, when Tailor refuses
# to start. Argument: true for --fresh (which moves the retained state aside).
start_plan() {
  "$PYTHON" - "$1" <<'PY'
import sys

from settings import Settings, TailorError
from stack.job_state import plan_start

fresh = sys.argv[1] == "true"
try:
    plan = plan_start(Settings.load(), fresh=fresh, discard_state=fresh)
except TailorError as exc:  # StartRefused, or Kafka not answering
    print(f"submit-job: not submitting: {exc}", file=sys.stderr)
    raise SystemExit(3) from None
print(f"submit-job: {plan.message}", file=sys.stderr)
restore = str(plan.restore.path) if plan.restore is not None else "-"
print(f"{restore}\t{'from-earliest' if plan.from_earliest else '-'}")
PY
}

one_round() {
  local live plan status restore earliest
  if ! $DRY_RUN; then
    live="$(live_job)"; status=$?
    if [ "$status" -eq 0 ]; then
      if $FRESH; then log "not replaying: the job runs ($live); stop it first"; return 1; fi
      log "running: $live"; return 0
    fi
    if [ "$status" -ne 1 ]; then return 1; fi
    log "no tailor-segmentation job on $JOBMANAGER: starting it"
    tailor topics create >&2 || { log "could not create the Kafka topics"; return 1; }
  fi
  plan="$(start_plan "$FRESH")"; status=$?
  if [ "$status" -ne 0 ]; then
    if [ "$status" -eq 3 ] && ! $FRESH; then
      log "to replay the events from the start instead (state moved aside, not deleted):" \
        "docker compose -f docker/docker-compose.yml run --rm tailor-job submit-job.sh --fresh"
    fi
    return 1
  fi
  IFS=$'\t' read -r restore earliest <<<"$plan"
  local cmd=(flink run -m "$JOBMANAGER" -d)
  if [ "$restore" != "-" ]; then cmd+=(-s "$restore"); fi
  cmd+=(-py "$JOB_PY" -pyfs "$PROJECT_DIR" -pyexec "$PYTHON" -pyclientexec "$PYTHON")
  # The job's own arguments come after Flink's options.
  if [ "$earliest" = from-earliest ]; then cmd+=(--from-earliest); fi
  if $DRY_RUN; then
    printf '%q ' "${cmd[@]}"; echo
    return 0
  fi
  log "${cmd[*]}"
  "${cmd[@]}" >&2
}

if $DRY_RUN || $FRESH || [ "$INTERVAL_S" = 0 ]; then
  one_round
  exit $?
fi
trap 'log "stopping"; exit 0' TERM INT
while true; do
  one_round || log "this round failed; next try in $INTERVAL_S s"
  sleep "$INTERVAL_S" &
  wait $!
done
