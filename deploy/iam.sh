#!/usr/bin/env bash
# Least-privilege IAM as code, idempotent: every resource is created only if
# missing, and every binding is on one secret, one bucket or one service —
# nothing project-wide. Sourced by deploy.sh (which defines `run`); can also
# run alone: PROJECT=… REGION=… deploy/iam.sh [accounts|resources|invokers]
set -euo pipefail

iam_accounts() {
  local sa
  for sa in "$WORKER_SA_ID:offpeak worker (token writer, charging cycle)" \
            "$SCOUT_SA_ID:offpeak scout (reads tokens, polls cars)" \
            "$SCHEDULER_SA_ID:offpeak scheduler (calls the scout)"; do
    run_or_create "gcloud iam service-accounts describe ${sa%%:*}@${PROJECT}.iam.gserviceaccount.com --project ${PROJECT}" \
      "gcloud iam service-accounts create ${sa%%:*} --project ${PROJECT} --display-name '${sa#*:}'"
  done
}

# Secrets and the state bucket, with the bindings each account needs on them.
iam_resources() {
  local s
  for s in "$FLEET_TOKENS_SECRET" "$CLIENT_ID_SECRET" "$CLIENT_SECRET_SECRET" "$LEGACY_SECRET"; do
    # Created empty: values are added by an operator (or fleetctl login), never by this script.
    run_or_create "gcloud secrets describe $s --project ${PROJECT}" \
      "gcloud secrets create $s --project ${PROJECT} --replication-policy automatic"
  done
  # Scout: read fleet-tokens, nothing else.
  run gcloud secrets add-iam-policy-binding "$FLEET_TOKENS_SECRET" --project "$PROJECT" \
    --member "serviceAccount:${SCOUT_SA}" --role roles/secretmanager.secretAccessor
  # Worker: read, add and destroy versions of fleet-tokens, and update the
  # secret's annotations, which carry the refresh lease (etag-guarded).
  # secretVersionManager covers add/destroy; the lease needs
  # secrets.get + secrets.update, which no narrow predefined role grants
  # (only secretmanager.admin, which could also delete the secret or change
  # its IAM): a custom role with just those two, bound on this one secret.
  run_or_create "gcloud iam roles describe ${LEASE_ROLE_ID} --project ${PROJECT}" \
    "gcloud iam roles create ${LEASE_ROLE_ID} --project ${PROJECT} --title 'offpeak token lease' --permissions secretmanager.secrets.get,secretmanager.secrets.update --stage GA"
  run gcloud secrets add-iam-policy-binding "$FLEET_TOKENS_SECRET" --project "$PROJECT" \
    --member "serviceAccount:${WORKER_SA}" --role roles/secretmanager.secretAccessor
  run gcloud secrets add-iam-policy-binding "$FLEET_TOKENS_SECRET" --project "$PROJECT" \
    --member "serviceAccount:${WORKER_SA}" --role roles/secretmanager.secretVersionManager
  run gcloud secrets add-iam-policy-binding "$FLEET_TOKENS_SECRET" --project "$PROJECT" \
    --member "serviceAccount:${WORKER_SA}" --role "projects/${PROJECT}/roles/${LEASE_ROLE_ID}"
  for s in "$CLIENT_ID_SECRET" "$CLIENT_SECRET_SECRET" "$LEGACY_SECRET"; do
    run gcloud secrets add-iam-policy-binding "$s" --project "$PROJECT" \
      --member "serviceAccount:${WORKER_SA}" --role roles/secretmanager.secretAccessor
  done
  if [[ -n "${PLANNER_URL:-}" ]]; then
    run gcloud secrets add-iam-policy-binding "$PLANNER_KEY_SECRET" --project "$PROJECT" \
      --member "serviceAccount:${WORKER_SA}" --role roles/secretmanager.secretAccessor
  fi
  run_or_create "gcloud storage buckets describe gs://${STATE_BUCKET} --project ${PROJECT}" \
    "gcloud storage buckets create gs://${STATE_BUCKET} --project ${PROJECT} --location ${REGION} --uniform-bucket-level-access"
  # Scout state, the worker's plan hashes and cycle leases: object read/write on this bucket only.
  run gcloud storage buckets add-iam-policy-binding "gs://${STATE_BUCKET}" \
    --member "serviceAccount:${SCOUT_SA}" --role roles/storage.objectUser
  run gcloud storage buckets add-iam-policy-binding "gs://${STATE_BUCKET}" \
    --member "serviceAccount:${WORKER_SA}" --role roles/storage.objectUser
}

# Who may invoke which service; needs the services to exist.
iam_invokers() {
  run gcloud run services add-iam-policy-binding "$WORKER_SERVICE" --project "$PROJECT" --region "$REGION" \
    --member "serviceAccount:${SCOUT_SA}" --role roles/run.invoker
  run gcloud run services add-iam-policy-binding "$SCOUT_SERVICE" --project "$PROJECT" --region "$REGION" \
    --member "serviceAccount:${SCHEDULER_SA}" --role roles/run.invoker
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  here="$(cd "$(dirname "$0")" && pwd)"
  # shellcheck source=deploy/lib.sh
  source "$here/lib.sh"
  require PROJECT REGION
  # shellcheck source=deploy/config.sh
  source "$here/config.sh"
  case "${1:-all}" in
    accounts) iam_accounts ;;
    resources) iam_resources ;;
    invokers) iam_invokers ;;
    all) iam_accounts; iam_resources; iam_invokers ;;
    *) echo "usage: $0 [accounts|resources|invokers|all]" >&2; exit 2 ;;
  esac
fi
