#!/usr/bin/env bash
# make destroy PROJECT=… REGION=… [CONFIRM=1] [DELETE_BUCKETS=1] [DELETE_REPOSITORY=1] [KEEP_SECRETS=0]
#
# Takes down what deploy.sh made. Without CONFIRM=1 it deletes nothing and
# prints what it would delete (as DRY_RUN=1 does, which wins over CONFIRM):
# look first, then run it again with CONFIRM=1.
#
# Always: the Scheduler job (first, so no tick starts), the three services
# and the five service accounts. Only when asked: the two buckets
# (DELETE_BUCKETS=1: scout state, plan hashes, build sources and logs), the
# image repository (DELETE_REPOSITORY=1) and the secrets (KEEP_SECRETS=0:
# the Tesla tokens, the app's credentials and the command key — a new key
# has to be paired with every car again). Kept always: the enabled APIs and
# the custom role offpeakTokenLease (it grants nothing by itself, and a
# deleted role's id stays taken for weeks, which would stop a new deploy).
# Safe to run again: what is already gone is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=deploy/lib.sh
source deploy/lib.sh
require PROJECT REGION
# shellcheck source=deploy/config.sh
source deploy/config.sh

flag_on() { [[ "${!1:-}" =~ ^(1|true|yes)$ ]]; }
flag_off() { [[ "${!1:-}" =~ ^(0|false|no)$ ]]; }

if ! flag_on CONFIRM; then
  DRY_RUN=1
fi

# delete DESCRIBE… --then DELETE…: delete what exists; in a dry run, print
# the delete.
delete() {
  local describe=() del=()
  while (($#)) && [[ "$1" != "--then" ]]; do
    describe+=("$1")
    shift
  done
  shift
  del=("$@")
  if dry_run; then
    run "${del[@]}"
  elif "${describe[@]}" >/dev/null 2>&1; then
    run "${del[@]}"
  else
    echo "destroy: not found (already gone, or not visible to you), skipped: $(quote "${del[@]}")" >&2
  fi
}

# 1. The job first: no tick may start while the services go.
delete gcloud scheduler jobs describe "$SCHEDULER_JOB" --project "$PROJECT" --location "$REGION" \
  --then gcloud scheduler jobs delete "$SCHEDULER_JOB" --project "$PROJECT" --location "$REGION" --quiet

# 2. The services: the scout (the caller) before the worker.
for svc in "$SCOUT_SERVICE" "$WORKER_SERVICE" "$PUBKEY_SERVICE"; do
  delete gcloud run services describe "$svc" --project "$PROJECT" --region "$REGION" \
    --then gcloud run services delete "$svc" --project "$PROJECT" --region "$REGION" --quiet
done

# 3. The accounts. Their bindings on what is kept (the secrets) stay behind
# as deleted:serviceAccount:… members, which grant nothing; a new deploy
# makes new accounts and binds them afresh.
for sa in "$SCOUT_SA" "$WORKER_SA" "$PUBKEY_SA" "$SCHEDULER_SA" "$BUILDER_SA"; do
  delete gcloud iam service-accounts describe "$sa" --project "$PROJECT" \
    --then gcloud iam service-accounts delete "$sa" --project "$PROJECT" --quiet
done

# 4. Storage, only when asked.
if flag_on DELETE_BUCKETS; then
  for bucket in "$STATE_BUCKET" "$BUILD_BUCKET"; do
    delete gcloud storage buckets describe "gs://${bucket}" --project "$PROJECT" \
      --then gcloud storage rm --recursive "gs://${bucket}" --project "$PROJECT"
  done
fi
if flag_on DELETE_REPOSITORY; then
  delete gcloud artifacts repositories describe "$AR_REPO" --project "$PROJECT" --location "$REGION" \
    --then gcloud artifacts repositories delete "$AR_REPO" --project "$PROJECT" --location "$REGION" --quiet
fi

# 5. The secrets, only when asked: the command key is paired with the cars,
# and the token chain is the only way back in without a new login.
if flag_off KEEP_SECRETS; then
  echo "destroy: $(dry_run && printf 'would delete' || printf 'deleting') the secrets: a new deploy then needs a new login (fleetctl login), a new key" >&2
  echo "  (fleetctl keygen) and a new pairing with every car (fleetctl pair)" >&2
  for s in "$FLEET_TOKENS_SECRET" "$CLIENT_ID_SECRET" "$CLIENT_SECRET_SECRET" "$LEGACY_SECRET" "$PRIVATE_KEY_SECRET" "$PLANNER_KEY_SECRET" "$DOMAIN_SECRET"; do
    delete gcloud secrets describe "$s" --project "$PROJECT" \
      --then gcloud secrets delete "$s" --project "$PROJECT" --quiet
  done
fi

if dry_run; then
  if flag_on CONFIRM; then
    echo "dry run: nothing was deleted" >&2
  else
    echo "dry run: nothing was deleted; run again with CONFIRM=1 to delete the above" >&2
  fi
  flag_off KEEP_SECRETS || echo "the secrets are kept (KEEP_SECRETS=0 deletes them too)" >&2
else
  echo "destroyed; kept: the APIs, the role ${LEASE_ROLE_ID}$(flag_off KEEP_SECRETS || printf ', the secrets')$(flag_on DELETE_BUCKETS || printf ', the buckets')$(flag_on DELETE_REPOSITORY || printf ', the image repository')" >&2
fi
