#!/usr/bin/env bats
# Packaging as shipped: the .deb that `cpack -G DEB` makes from this build installs into a
# clean root with dpkg, its man pages are found by man, its bash completions load and
# complete, its Depends covers every library the commands link, `--version` reports the
# package version; the Dockerfile builds and ships that same package.

bats_require_minimum_version 1.5.0

# The commands this build has: the envkit commands (options.hpp's list) that exist.
built_commands() {
  local c
  for c in sensor-push db-backup proxy-check shard-route race-probe queue-relay; do
    [[ -x $ENVKIT_BUILD_DIR/bin/$c ]] && echo "$c"
  done
}

setup_file() {
  load ../lib/test_helper
  export PKG_DIR=$BATS_FILE_TMPDIR/pkg ROOT=$BATS_FILE_TMPDIR/root
  # The package, from the commands already built (cpack installs what was built).
  (cd "$ENVKIT_BUILD_DIR" && cpack -G DEB -B "$PKG_DIR" >"$BATS_FILE_TMPDIR/cpack.log" 2>&1) || {
    cat "$BATS_FILE_TMPDIR/cpack.log" >&2
    return 1
  }
  DEB=$(ls "$PKG_DIR"/envkit_*.deb)
  export DEB
  # A clean root with an empty dpkg database: the package alone, installed by dpkg. Its
  # libraries are this machine's (dpkg cannot install Debian into the root), so the
  # dependency check is forced and made separately below.
  mkdir -p "$ROOT/var/lib/dpkg/info" "$ROOT/var/lib/dpkg/updates"
  : >"$ROOT/var/lib/dpkg/status"
  dpkg --root="$ROOT" --log=/dev/null --force-depends --force-not-root -i "$DEB" \
    >"$BATS_FILE_TMPDIR/dpkg.log" 2>&1 || {
    cat "$BATS_FILE_TMPDIR/dpkg.log" >&2
    return 1
  }
}

setup() {
  load ../lib/test_helper
}

@test "the package is envkit at the project's version, and --version says the same" {
  run -0 dpkg-deb -f "$DEB" Package Version Architecture
  assert_line 'Package: envkit'
  local version
  version=$(sed -n 's/^project(envkit VERSION \([0-9.]*\).*/\1/p' "$ENVKIT_SOURCE_DIR/CMakeLists.txt")
  [[ -n $version ]]
  assert_line "Version: $version"
  for c in $(built_commands); do
    run -0 "$ROOT/usr/bin/$c" --version
    assert_output "$c (envkit) $version"
  done
}

@test "dpkg installed every command, man page and completion into the clean root" {
  run -0 dpkg --root="$ROOT" -s envkit
  assert_line 'Status: install ok installed'
  local n=0
  for c in $(built_commands); do
    assert_file_executable "$ROOT/usr/bin/$c"
    assert_file_exists "$ROOT/usr/share/man/man1/$c.1"
    assert_file_exists "$ROOT/usr/share/bash-completion/completions/$c"
    run -0 dpkg --root="$ROOT" -S "/usr/bin/$c"
    ((++n))
  done
  ((n >= 3))
  # Nothing else: commands, man pages, completions.
  local others
  others=$(dpkg-deb -c "$DEB" | awk '{print $6}' | grep -v '/$' |
    grep -Ev '^\./usr/(bin/[a-z-]+|share/man/man1/[a-z-]+\.1|share/bash-completion/completions/[a-z-]+)$' || true)
  [[ -z $others ]] || { echo "unexpected: $others"; false; }
}

@test "man -w finds every page in the installed root, and each renders without errors" {
  for c in $(built_commands); do
    MANPATH=$ROOT/usr/share/man run -0 man -w "$c"
    assert_output "$ROOT/usr/share/man/man1/$c.1"
    MANWIDTH=80 MANPATH=$ROOT/usr/share/man run -0 --separate-stderr man -P cat "$c"
    # troff's "cannot adjust line" warnings about long URLs are cosmetic; errors are not.
    if grep -v 'warning' <<<"$stderr" | grep -q .; then echo "$stderr"; false; fi
    assert_output --partial "$c"
  done
}

# Completes the words "$@" (the last one being completed) with the installed completion of
# the first word, in a fresh bash, the way bash's programmable completion calls it.
complete_words() {
  bash --norc --noprofile -c '
    root=$1 cmd=$2
    shift 2
    source "$root/usr/share/bash-completion/completions/$cmd"
    spec=$(complete -p "$cmd") || exit 1
    func=${spec#*-F }
    func=${func%% *}
    COMP_WORDS=("$cmd" "$@")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMP_LINE="${COMP_WORDS[*]}"
    COMP_POINT=${#COMP_LINE}
    "$func" "$cmd" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    printf "%s\n" "${COMPREPLY[@]}" | sort
  ' complete_words "$ROOT" "$@"
}

@test "the completions load in bash and complete subcommands, options and their values" {
  run -0 complete_words db-backup ve
  assert_output verify
  run -0 complete_words db-backup ''
  assert_output "$(printf '%s\n' diff dump list prune restore verify)"
  run -0 complete_words db-backup dump --keep-
  assert_output "$(printf '%s\n' --keep-daily --keep-last --keep-monthly --keep-weekly)"
  run -0 complete_words sensor-push --spo
  assert_output "$(printf '%s\n' --spool --spool-max)"
  run -0 complete_words sensor-push --check-c
  assert_output --check-config
  run -0 complete_words proxy-check --expect c
  assert_output closed
  mkdir -p "$BATS_TEST_TMPDIR/cfgdir" && : >"$BATS_TEST_TMPDIR/cfg.yaml"
  run -0 complete_words proxy-check --config "$BATS_TEST_TMPDIR/cfg."
  assert_output "$BATS_TEST_TMPDIR/cfg.yaml"
  run -0 complete_words db-backup dump --out "$BATS_TEST_TMPDIR/cf"
  assert_output "$BATS_TEST_TMPDIR/cfgdir"
}

@test "each completion offers exactly the options the command's --help lists" {
  for c in $(built_commands); do
    local from_help from_completion
    from_help=$("$ROOT/usr/bin/$c" --help | grep -oE '^  (-[a-zA-Z] \[ )?--[a-z][a-z0-9-]*' |
      grep -oE -- '--[a-z][a-z0-9-]*' | sort -u)
    from_completion=$(complete_words "$c" -- | sort -u)
    [[ -n $from_help ]]
    if [[ $from_help != "$from_completion" ]]; then
      diff <(echo "$from_help") <(echo "$from_completion") || true
      false
    fi
  done
}

@test "the completion generator fails on a command without --help instead of writing nothing" {
  run -69 sh "$ENVKIT_SOURCE_DIR/completions/generate" /bin/false "$BATS_TEST_TMPDIR/out"
  assert_not_exists "$BATS_TEST_TMPDIR/out"
}

@test "the package's Depends names the Debian package of every library the commands link" {
  local depends
  depends=$(dpkg-deb -f "$DEB" Depends)
  [[ -n $depends ]]
  # Direct NEEDED entries only: each library's own dependencies are its package's business.
  # Each resolved path, also as its real path and with and without /usr (merged /usr: dpkg
  # knows some libraries by one and some by the other), asked of dpkg in one call.
  local c lib path resolved needed=() candidates=()
  for c in $(built_commands); do
    resolved=$(ldd "$ROOT/usr/bin/$c")
    while read -r lib; do
      path=$(awk -v l="$lib" '$1 == l {print $3}' <<<"$resolved")
      [[ -n $path ]] || { echo "$c: $lib does not resolve"; false; }
      needed+=("$c:$lib:$path")
      candidates+=("$path" "$(readlink -f "$path")" "${path#/usr}" "/usr$path")
    done < <(objdump -p "$ROOT/usr/bin/$c" | awk '$1 == "NEEDED" {print $2}')
  done
  ((${#needed[@]} > 5))
  local owners
  owners=$(dpkg -S "${candidates[@]}" 2>/dev/null || true)
  local entry pkg real
  for entry in "${needed[@]}"; do
    IFS=: read -r c lib path <<<"$entry"
    real=$(readlink -f "$path")
    pkg=$(awk -F': ' -v a="$path" -v b="$real" -v c="${path#/usr}" -v d="/usr$path" \
      '$2 == a || $2 == b || $2 == c || $2 == d {print $1; exit}' <<<"$owners")
    [[ -n $pkg ]] || { echo "$c: no package owns $path"; false; }
    pkg=${pkg%%:*}
    pkg=${pkg%%,*}
    if ! tr ',' '\n' <<<"$depends" | awk '{print $1}' | grep -qxF "$pkg"; then
      echo "$c links $lib from $pkg, which Depends ($depends) does not name"
      false
    fi
  done
}

@test "the Dockerfile builds with Debian's packages, ships the package as a non-root user" {
  local df=$ENVKIT_SOURCE_DIR/Dockerfile
  assert_file_exists "$ENVKIT_SOURCE_DIR/.dockerignore"
  # Two stages: bookworm to build, bookworm-slim to run.
  run -0 grep -cE '^FROM ' "$df"
  assert_output 2
  run -0 grep -E '^FROM ' "$df"
  assert_line --index 0 'FROM debian:bookworm AS build'
  assert_line --index 1 'FROM debian:bookworm-slim'
  # The build stage installs every library package bootstrap installs for the build.
  local build_stage runtime_stage p
  build_stage=$(sed -n '/^FROM debian:bookworm AS build/,/^FROM /p' "$df")
  runtime_stage=$(sed -n '/^FROM debian:bookworm-slim/,$p' "$df")
  for p in $(sed -n '/# libraries the build links/,/# JSON library/p' "$ENVKIT_SOURCE_DIR/scripts/bootstrap" |
    grep -v '#') rapidjson-dev cmake ninja-build pkg-config file dpkg-dev; do
    [[ $build_stage == *" $p"* ]] || { echo "build stage lacks $p"; false; }
  done
  # It makes the package this test checked; the runtime stage installs it, no compiler, and
  # runs as a user that is not root.
  [[ $build_stage == *"cpack -G DEB"* ]]
  [[ $runtime_stage == *"COPY --from=build /src/build/envkit_*.deb"* ]]
  [[ $runtime_stage == *"/tmp/envkit_*.deb"* ]]
  [[ $runtime_stage != *"-dev"* && $runtime_stage != *build-essential* ]]
  run -0 grep -E '^USER ' "$df"
  refute_output --regexp 'USER (root|0)$'
  # The .dockerignore keeps build trees out of the context, so the image builds from source.
  run -0 grep -x 'build\*/' "$ENVKIT_SOURCE_DIR/.dockerignore"
}
