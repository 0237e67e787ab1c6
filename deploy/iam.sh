#!/usr/bin/env bash
# Identities, the resources they use and least-privilege bindings, as code.
# Idempotent: everything is created only if missing, and bindings are
# add-iam-policy-binding (a no-op when present). Every binding sits on ONE
# secret, ONE bucket, ONE repository or ONE service: nothing project-wide.
#
# Sourced by deploy.sh; can also run alone:
#   PROJECT=… REGION=… [DRY_RUN=1] deploy/iam.sh [accounts|resources|invokers|all]
# (invokers needs the services to exist).
set -euo pipefail

iam_accounts() {
  local id title
  while IFS='|' read -r id title; do
    create_if_missing gcloud iam service-accounts describe "${id}@${PROJECT}.iam.gserviceaccount.com" --project "$PROJECT" \
      --then gcloud iam service-accounts create "$id" --project "$PROJECT" --display-name "$title"
  done <<EOF
${WORKER_SA_ID}|offpeak worker: the one token writer, the charging cycle
${SCOUT_SA_ID}|offpeak scout: reads tokens, polls the cars
${SCHEDULER_SA_ID}|offpeak scheduler: calls the scout
${BUILDER_SA_ID}|offpeak builder: Cloud Build pushes the images
EOF
}

iam_resources() {
  iam_secrets
  iam_buckets
  iam_registry
}

iam_secrets() {
  local s
  local secrets=("$FLEET_TOKENS_SECRET" "$CLIENT_ID_SECRET" "$CLIENT_SECRET_SECRET" "$LEGACY_SECRET" "$PRIVATE_KEY_SECRET")
  [[ -n "${PLANNER_URL:-}" ]] && secrets+=("$PLANNER_KEY_SECRET")
  for s in "${secrets[@]}"; do
    # Created empty. Values come from an operator (or `fleetctl login`, and
    # for the command key `fleetctl keygen`), never from this script; a
    # takeover finds them all present and creates nothing.
    create_if_missing gcloud secrets describe "$s" --project "$PROJECT" \
      --then gcloud secrets create "$s" --project "$PROJECT" --replication-policy automatic
  done

  # Scout: reads fleet-tokens, nothing else. It never refreshes.
  bind gcloud secrets add-iam-policy-binding "$FLEET_TOKENS_SECRET" --project "$PROJECT" \
    --member "serviceAccount:${SCOUT_SA}" --role roles/secretmanager.secretAccessor

  # Worker on fleet-tokens: read (secretAccessor); add, list and destroy
  # versions (secretVersionManager); and the refresh lease, an etag-guarded
  # update of the secret's annotations, which needs secretmanager.secrets.get
  # and secretmanager.secrets.update. No narrow predefined role has update:
  # only secretmanager.admin, which could also delete the secret, rewrite its
  # IAM policy or read every other secret it is bound on. A custom role with
  # just those two permissions, bound on this one secret, is least privilege.
  create_if_missing gcloud iam roles describe "$LEASE_ROLE_ID" --project "$PROJECT" \
    --then gcloud iam roles create "$LEASE_ROLE_ID" --project "$PROJECT" --title "offpeak token lease" \
    --description "Read and update the fleet-tokens secret's annotations (the refresh lease)" \
    --permissions secretmanager.secrets.get,secretmanager.secrets.update --stage GA
  local role
  for role in roles/secretmanager.secretAccessor roles/secretmanager.secretVersionManager "projects/${PROJECT}/roles/${LEASE_ROLE_ID}"; do
    bind gcloud secrets add-iam-policy-binding "$FLEET_TOKENS_SECRET" --project "$PROJECT" \
      --member "serviceAccount:${WORKER_SA}" --role "$role"
  done
  # Worker: reads the app's credentials, the legacy refresh token (migration),
  # the command key it signs with (read only: the operator writes it) and,
  # with PLANNER_URL, the planner's API key. The scout gets none of them.
  for s in "${secrets[@]:1}"; do
    bind gcloud secrets add-iam-policy-binding "$s" --project "$PROJECT" \
      --member "serviceAccount:${WORKER_SA}" --role roles/secretmanager.secretAccessor
  done
}

iam_buckets() {
  # State: the scout's per-car state, the worker's plan hashes and per-car
  # cycle leases (small JSON objects written with ifGenerationMatch).
  create_if_missing gcloud storage buckets describe "gs://${STATE_BUCKET}" --project "$PROJECT" \
    --then gcloud storage buckets create "gs://${STATE_BUCKET}" --project "$PROJECT" --location "$REGION" \
    --uniform-bucket-level-access --public-access-prevention
  local sa
  for sa in "$SCOUT_SA" "$WORKER_SA"; do
    bind gcloud storage buckets add-iam-policy-binding "gs://${STATE_BUCKET}" --project "$PROJECT" \
      --member "serviceAccount:${sa}" --role roles/storage.objectUser
  done
  # Build: the source Cloud Build reads and the logs it writes, kept 7 days.
  create_if_missing gcloud storage buckets describe "gs://${BUILD_BUCKET}" --project "$PROJECT" \
    --then gcloud storage buckets create "gs://${BUILD_BUCKET}" --project "$PROJECT" --location "$REGION" \
    --uniform-bucket-level-access --public-access-prevention
  run gcloud storage buckets update "gs://${BUILD_BUCKET}" --project "$PROJECT" --lifecycle-file deploy/build-bucket-lifecycle.json
  bind gcloud storage buckets add-iam-policy-binding "gs://${BUILD_BUCKET}" --project "$PROJECT" \
    --member "serviceAccount:${BUILDER_SA}" --role roles/storage.objectUser
}

iam_registry() {
  create_if_missing gcloud artifacts repositories describe "$AR_REPO" --project "$PROJECT" --location "$REGION" \
    --then gcloud artifacts repositories create "$AR_REPO" --project "$PROJECT" --location "$REGION" \
    --repository-format docker --description "offpeak images, deployed by digest"
  # Keep the 5 newest images of each service, drop the rest after 30 days:
  # the free tier is 0.5 GB and every deploy pushes two images.
  run gcloud artifacts repositories set-cleanup-policies "$AR_REPO" --project "$PROJECT" --location "$REGION" \
    --policy deploy/registry-cleanup.json --no-dry-run
  # Cloud Build runs as its own account that can push here and nothing else
  # (a new project's default build account may have no roles, or Editor).
  bind gcloud artifacts repositories add-iam-policy-binding "$AR_REPO" --project "$PROJECT" --location "$REGION" \
    --member "serviceAccount:${BUILDER_SA}" --role roles/artifactregistry.writer
}

# Who may invoke which service; needs the services to exist.
iam_invokers() {
  bind gcloud run services add-iam-policy-binding "$WORKER_SERVICE" --project "$PROJECT" --region "$REGION" \
    --member "serviceAccount:${SCOUT_SA}" --role roles/run.invoker
  bind gcloud run services add-iam-policy-binding "$SCOUT_SERVICE" --project "$PROJECT" --region "$REGION" \
    --member "serviceAccount:${SCHEDULER_SA}" --role roles/run.invoker
  if [[ -n "${OPERATOR:-}" ]]; then
    local svc
    for svc in "$WORKER_SERVICE" "$SCOUT_SERVICE"; do
      bind gcloud run services add-iam-policy-binding "$svc" --project "$PROJECT" --region "$REGION" \
        --member "user:${OPERATOR}" --role roles/run.invoker
    done
  fi
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  cd "$(dirname "$0")/.."
  # shellcheck source=deploy/lib.sh
  source deploy/lib.sh
  require PROJECT REGION
  # shellcheck source=deploy/config.sh
  source deploy/config.sh
  case "${1:-all}" in
    accounts) iam_accounts ;;
    resources) iam_resources ;;
    invokers) iam_invokers ;;
    all) iam_accounts; iam_resources; iam_invokers ;;
    *) echo "usage: $0 [accounts|resources|invokers|all]" >&2; exit 2 ;;
  esac
fi
