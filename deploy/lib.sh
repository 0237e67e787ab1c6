# Helpers shared by the deploy scripts. Every cloud command goes through
# `run`, which prints it instead when DRY_RUN=1.

run() {
  if [[ "${DRY_RUN:-0}" == "1" ]]; then
    # Quoted so the printed line can be pasted into a shell as is.
    local out
    printf -v out '%q ' "$@"
    printf '%s\n' "${out% }"
  else
    printf '+ %s\n' "$*" >&2
    "$@"
  fi
}

# run_or_create DESCRIBE CREATE: create only what does not exist yet.
run_or_create() {
  if [[ "${DRY_RUN:-0}" == "1" ]]; then
    printf '%s || %s\n' "$1" "$2"
  elif ! eval "$1" >/dev/null 2>&1; then
    printf '+ %s\n' "$2" >&2
    eval "$2"
  fi
}

# require VAR…: stop with a message naming every missing variable.
require() {
  local missing=()
  local v
  for v in "$@"; do
    [[ -n "${!v:-}" ]] || missing+=("$v")
  done
  if ((${#missing[@]})); then
    echo "deploy: set ${missing[*]} (e.g. make deploy PROJECT=my-project REGION=europe-central2 HOME_LAT=52.23 HOME_LON=21.01)" >&2
    exit 2
  fi
}

# render TEMPLATE OUT: fill ${NAME} placeholders from the environment; fail
# if one is left unset.
render() {
  local text
  text="$(cat "$1")"
  local name
  for name in $(grep -o '\${[A-Z_]*}' "$1" | sort -u | tr -d '${}'); do
    if [[ -z "${!name+x}" ]]; then
      echo "deploy: $1 needs $name" >&2
      exit 2
    fi
    text="${text//\$\{$name\}/${!name}}"
  done
  printf '%s\n' "$text" >"$2"
}
