# Helpers shared by the deploy scripts. Every cloud command goes through
# `run`, `bind`, `create_if_missing` or `query`: with DRY_RUN=1 they print the
# command (quoted, so the output can be pasted into a shell) and run nothing.

dry_run() { [[ "${DRY_RUN:-0}" =~ ^(1|true|yes)$ ]]; }

# quote ARGS…: the arguments as one shell-quoted line.
quote() {
  local out
  printf -v out '%q ' "$@"
  printf '%s' "${out% }"
}

# run CMD…: print in a dry run; otherwise echo to stderr and execute.
run() {
  if dry_run; then
    printf '%s\n' "$(quote "$@")"
  else
    printf '+ %s\n' "$(quote "$@")" >&2
    "$@"
  fi
}

# bind CMD…: an add-iam-policy-binding, which is idempotent. A service account
# created seconds ago may not be visible to IAM yet, so a failure is retried.
bind() {
  if dry_run; then
    run "$@"
    return
  fi
  local attempt
  for attempt in 1 2 3 4 5 6; do
    if run "$@" >/dev/null; then
      return 0
    fi
    echo "deploy: binding failed (attempt ${attempt}/6); a new account can take a minute to propagate" >&2
    sleep "${BIND_RETRY_SLEEP:-10}"
  done
  echo "deploy: giving up on: $(quote "$@")" >&2
  return 1
}

# create_if_missing DESCRIBE… --then CREATE…: create only what does not exist,
# so the scripts can run again and again.
create_if_missing() {
  local describe=() create=()
  while (($#)) && [[ "$1" != "--then" ]]; do
    describe+=("$1")
    shift
  done
  shift
  create=("$@")
  if dry_run; then
    printf '%s || %s\n' "$(quote "${describe[@]}")" "$(quote "${create[@]}")"
  elif ! "${describe[@]}" >/dev/null 2>&1; then
    run "${create[@]}"
  fi
}

# query VAR PLACEHOLDER CMD…: set VAR to the command's output. A dry run cannot
# know the answer: it prints the command and uses PLACEHOLDER, so its output
# stays the same from run to run.
query() {
  local var="$1" placeholder="$2"
  shift 2
  local value
  if dry_run; then
    printf '%s=$(%s)\n' "$var" "$(quote "$@")"
    value="$placeholder"
  else
    printf '+ %s\n' "$(quote "$@")" >&2
    value="$("$@")"
    if [[ -z "$value" ]]; then
      echo "deploy: $(quote "$@") returned nothing (needed for ${var})" >&2
      exit 1
    fi
  fi
  printf -v "$var" '%s' "$value"
}

# inspect VAR PLACEHOLDER CMD…: as query, for a command whose answer may
# be empty (a list with nothing in it); it must still succeed.
inspect() {
  local var="$1" placeholder="$2"
  shift 2
  local value
  if dry_run; then
    printf '%s=$(%s)\n' "$var" "$(quote "$@")"
    value="$placeholder"
  else
    printf '+ %s\n' "$(quote "$@")" >&2
    if ! value="$("$@")"; then
      echo "deploy: $(quote "$@") failed (needed for ${var})" >&2
      exit 1
    fi
  fi
  printf -v "$var" '%s' "$value"
}

# require VAR…: stop with a message naming every missing variable.
require() {
  local missing=() v
  for v in "$@"; do
    [[ -n "${!v:-}" ]] || missing+=("$v")
  done
  if ((${#missing[@]})); then
    echo "deploy: missing ${missing[*]}: set them on the command line, e.g." >&2
    echo "  make deploy PROJECT=my-project REGION=europe-central2 HOME_LAT=52.2297 HOME_LON=21.0122" >&2
    exit 2
  fi
}

# require_number VAR…: a decimal number such as 52.2297 or -0.1278.
require_number() {
  local v
  for v in "$@"; do
    if [[ ! "${!v}" =~ ^-?[0-9]+(\.[0-9]+)?$ ]]; then
      echo "deploy: ${v}=${!v} is not a decimal number of degrees" >&2
      exit 2
    fi
  done
}

# render TEMPLATE OUT: fill the ${NAME} placeholders from the environment,
# failing if one is unset; drop comment lines, and env entries whose value
# came out empty (an optional setting left out: the service then uses its own
# default). A dry run prints the result as a here-document instead.
render() {
  local template="$1" out="$2" text name
  text="$(<"$template")"
  for name in $(grep -o '\${[A-Z_][A-Z0-9_]*}' "$template" | sort -u | tr -d '${}'); do
    if [[ -z "${!name+x}" ]]; then
      echo "deploy: $template needs $name" >&2
      exit 2
    fi
    # Quoted pattern and replacement: literal text, even with & or \ in a value.
    local placeholder='${'"$name"'}' value="${!name}"
    text="${text//"$placeholder"/"$value"}"
  done
  local lines=() line i
  mapfile -t lines <<<"$text"
  text=""
  for ((i = 0; i < ${#lines[@]}; i++)); do
    line="${lines[i]}"
    # Comments explain the template; the rendered file is for the machine.
    [[ "$line" =~ ^[[:space:]]*# ]] && continue
    if [[ "$line" =~ ^[[:space:]]*-\ name:\ [A-Z_0-9]+$ && "${lines[i + 1]:-}" =~ ^[[:space:]]*value:[[:space:]]*(\"\"|\'\')?[[:space:]]*$ ]]; then
      ((i += 1))
      continue
    fi
    text+="$line"$'\n'
  done
  if dry_run; then
    printf "cat > %s <<'YAML'\n%sYAML\n" "$(quote "$out")" "$text"
  else
    printf '%s' "$text" >"$out"
  fi
}
