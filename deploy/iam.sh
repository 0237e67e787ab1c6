#!/usr/bin/env bash
# Identities, the resources they use and least-privilege bindings, as code.
# Idempotent: everything is created only if missing, and bindings are
# add-iam-policy-binding (a no-op when present). Every binding sits on ONE
# secret, ONE bucket, ONE repository or ONE service: nothing project-wide.
#
# Sourced by deploy.sh; can also run alone:
#   PROJECT=… REGION=… [DRY_RUN=1] deploy/iam.sh [accounts|resources|invokers|check|all]
# (invokers and check need the services to exist).
set -euo pipefail

iam_accounts() {
  local id title
  while IFS='|' read -r id title; do
    [[ -n "$id" ]] || continue
    create_if_missing gcloud iam service-accounts describe "${id}@${PROJECT}.iam.gserviceaccount.com" --project "$PROJECT" \
      --then gcloud iam service-accounts create "$id" --project "$PROJECT" --display-name "$title"
  done <<EOF
${WORKER_SA_ID}|offpeak worker: the one token writer, the charging cycle
${SCOUT_SA_ID}|offpeak scout: reads tokens, polls the cars
$(serve_public_key && echo "${PUBKEY_SA_ID}|offpeak pubkey: serves the command key's public half")
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
  # The app's domain, as the Python system kept it: `fleetctl register`
  # stores it and `fleetctl pair` reads it. No service reads it: no binding.
  create_if_missing gcloud secrets describe "$DOMAIN_SECRET" --project "$PROJECT" \
    --then gcloud secrets create "$DOMAIN_SECRET" --project "$PROJECT" --replication-policy automatic

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
  # The public-key service reads the command key, derives its public half
  # and serves only that. It can read no other secret.
  if serve_public_key; then
    bind gcloud secrets add-iam-policy-binding "$PRIVATE_KEY_SECRET" --project "$PROJECT" \
      --member "serviceAccount:${PUBKEY_SA}" --role roles/secretmanager.secretAccessor
  fi
}

# state_condition TITLE PREFIX…: the --condition value that limits a
# binding on the state bucket to the objects whose names start with one of
# the prefixes. A Cloud Storage object's resource name, as IAM conditions
# see it, is projects/_/buckets/BUCKET/objects/OBJECT
# (cloud.google.com/iam/docs/conditions-resource-attributes#resource-name).
# gcloud splits --condition at commas: the expression and the description
# have none.
state_condition() {
  local title="$1" expr="" p
  shift
  for p in "$@"; do
    expr+="${expr:+ || }resource.name.startsWith(\"projects/_/buckets/${STATE_BUCKET}/objects/${p}\")"
  done
  printf 'expression=%s,title=%s,description=%s' "$expr" "$title" "objects under $* only"
}

iam_buckets() {
  # State: the scout's per-car state, the worker's plan hashes and per-car
  # cycle leases (small JSON objects written with ifGenerationMatch).
  create_if_missing gcloud storage buckets describe "gs://${STATE_BUCKET}" --project "$PROJECT" \
    --then gcloud storage buckets create "gs://${STATE_BUCKET}" --project "$PROJECT" --location "$REGION" \
    --uniform-bucket-level-access --public-access-prevention
  # Each service reads and writes only its own objects, so neither can
  # overwrite (or delete, or read) the other's records, leases or plan
  # hashes: roles/storage.objectUser (get; create, and replace, which needs
  # delete too, under ifGenerationMatch; delete) under an IAM condition on
  # the object's name. The prefixes are in config.sh. Neither service lists
  # objects: a list is checked against the bucket's name, which no condition
  # here matches. Conditions need uniform bucket-level access on the bucket
  # (cloud.google.com/storage/docs/access-control/iam#conditions,
  # cloud.google.com/storage/docs/uniform-bucket-level-access): the bucket is
  # created with it; one made otherwise (STATE_BUCKET set to an old bucket)
  # is refused here rather than by six failed bindings.
  local STATE_UBLA STATE_POLICY
  inspect STATE_UBLA True gcloud storage buckets describe "gs://${STATE_BUCKET}" --project "$PROJECT" \
    --format 'value(uniform_bucket_level_access)'
  if [[ "${STATE_UBLA,,}" != true ]]; then
    echo "deploy: gs://${STATE_BUCKET} does not have uniform bucket-level access, which IAM conditions need; turn it on:" >&2
    echo "  gcloud storage buckets update gs://${STATE_BUCKET} --uniform-bucket-level-access --project ${PROJECT}" >&2
    exit 1
  fi
  local prefixes
  read -ra prefixes <<<"$SCOUT_STATE_PREFIXES"
  bind gcloud storage buckets add-iam-policy-binding "gs://${STATE_BUCKET}" --project "$PROJECT" \
    --member "serviceAccount:${SCOUT_SA}" --role roles/storage.objectUser \
    --condition "$(state_condition offpeak-scout-state "${prefixes[@]}")"
  read -ra prefixes <<<"$SCOUT_STATE_READ_PREFIXES"
  bind gcloud storage buckets add-iam-policy-binding "gs://${STATE_BUCKET}" --project "$PROJECT" \
    --member "serviceAccount:${SCOUT_SA}" --role roles/storage.objectViewer \
    --condition "$(state_condition offpeak-scout-read "${prefixes[@]}")"
  read -ra prefixes <<<"$WORKER_STATE_PREFIXES"
  bind gcloud storage buckets add-iam-policy-binding "gs://${STATE_BUCKET}" --project "$PROJECT" \
    --member "serviceAccount:${WORKER_SA}" --role roles/storage.objectUser \
    --condition "$(state_condition offpeak-worker-state "${prefixes[@]}")"
  # Earlier deploys bound objectUser on the whole bucket, with no condition;
  # bindings add up, so that one would still grant everything: remove any
  # unconditional binding of the two accounts here (after the conditional
  # ones exist, so a running service never loses its own objects).
  local role member title
  inspect STATE_POLICY "" gcloud storage buckets get-iam-policy "gs://${STATE_BUCKET}" --project "$PROJECT" \
    --flatten 'bindings[].members' --format 'value(bindings.role,bindings.members,bindings.condition.title)'
  while IFS=$'\t' read -r role member title; do
    if [[ -z "$title" && ("$member" == "serviceAccount:${SCOUT_SA}" || "$member" == "serviceAccount:${WORKER_SA}") ]]; then
      run gcloud storage buckets remove-iam-policy-binding "gs://${STATE_BUCKET}" --project "$PROJECT" \
        --member "$member" --role "$role" --condition None
    fi
  done <<<"$STATE_POLICY"
  # Build: the source Cloud Build reads and the logs it writes, kept 7 days,
  # next to the builds (BUILD_REGION).
  create_if_missing gcloud storage buckets describe "gs://${BUILD_BUCKET}" --project "$PROJECT" \
    --then gcloud storage buckets create "gs://${BUILD_BUCKET}" --project "$PROJECT" --location "$BUILD_REGION" \
    --uniform-bucket-level-access --public-access-prevention
  run gcloud storage buckets update "gs://${BUILD_BUCKET}" --project "$PROJECT" --lifecycle-file deploy/build-bucket-lifecycle.json
  # A build that runs as a service account of ours must log to Cloud Logging
  # or to a bucket of ours, and for a user-created logs bucket Google
  # documents the Storage Admin role for that account
  # (cloud.google.com/build/docs/securing-builds/store-view-build-logs,
  # "Store build logs in a user-created bucket"). objectUser alone was not
  # enough: it has no bucket-level permission such as storage.buckets.get,
  # and the builder could not use its logs bucket ("builder service account
  # does not have access to logs bucket"). Bound on this one bucket, not the
  # project. (Cloud Logging instead would need roles/logging.logWriter,
  # which is granted on the whole project.)
  bind gcloud storage buckets add-iam-policy-binding "gs://${BUILD_BUCKET}" --project "$PROJECT" \
    --member "serviceAccount:${BUILDER_SA}" --role roles/storage.admin
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
  # The one public service: Tesla and the owner's phone fetch the public key
  # without credentials. It serves that one path and reads one secret. (An
  # organization policy that restricts members to your domain refuses this
  # binding: see deploy/README.md, "The public key".)
  if serve_public_key; then
    bind gcloud run services add-iam-policy-binding "$PUBKEY_SERVICE" --project "$PROJECT" --region "$REGION" \
      --member allUsers --role roles/run.invoker
  fi
}

# After deploying: the private services must be private. Fails, naming the
# service and what opens it, if either has an invoker binding for everyone
# (allUsers, allAuthenticatedUsers: any role) or Cloud Run's invoker check
# turned off (the run.googleapis.com/invoker-iam-disabled annotation, set by
# `--no-invoker-iam-check`), which lets anyone call it whatever the policy says.
iam_check_private() {
  local svc open=() line
  local everyone='(^|[[:space:]])(allUsers|allAuthenticatedUsers)$'
  local check_off="run\\.googleapis\\.com/invoker-iam-disabled:[[:space:]]*['\"]?true"
  for svc in "$WORKER_SERVICE" "$SCOUT_SERVICE"; do
    inspect MEMBERS "" gcloud run services get-iam-policy "$svc" --project "$PROJECT" --region "$REGION" \
      --flatten 'bindings[].members' --format 'value(bindings.role,bindings.members)'
    while IFS= read -r line; do
      if [[ "$line" =~ $everyone ]]; then
        open+=("${svc}: ${line//$'\t'/ } (remove it: gcloud run services remove-iam-policy-binding ${svc} --member ${BASH_REMATCH[2]} --role ${line%%[[:space:]]*} --region ${REGION} --project ${PROJECT})")
      fi
    done <<<"$MEMBERS"
    inspect ANNOTATIONS "" gcloud run services describe "$svc" --project "$PROJECT" --region "$REGION" \
      --format 'yaml(metadata.annotations)'
    if [[ "$ANNOTATIONS" =~ $check_off ]]; then
      open+=("${svc}: the invoker IAM check is off (turn it on: gcloud run services update ${svc} --invoker-iam-check --region ${REGION} --project ${PROJECT})")
    fi
  done
  if ((${#open[@]})); then
    echo "deploy: a private service is open to everyone:" >&2
    printf '  %s\n' "${open[@]}" >&2
    return 1
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
    check) iam_check_private ;;
    all) iam_accounts; iam_resources; iam_invokers; iam_check_private ;;
    *) echo "usage: $0 [accounts|resources|invokers|check|all]" >&2; exit 2 ;;
  esac
fi
