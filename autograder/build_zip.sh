#!/usr/bin/env bash
# Makes the Gradescope autograder zip: setup.sh and run_autograder at its
# top, beside the workbook (its manifest, exercises, support crates, grading
# cases and xtask). Build output, history and the reference solutions stay
# out: a submission's programs must find no answer key on the grading
# machine. Upload the zip as a Gradescope "zip file upload" autograder.
#
# The skeletons in the zip are the released ones (xtask/released-skeletons.txt),
# whatever this checkout's exercises/ holds: a step you solved here is shipped
# as its skeleton, taken from git's history, or the zip is not made.
#
# Usage: autograder/build_zip.sh [--step STEP] [OUT.zip]   (default:
# autograder.zip in the workbook's root). --step makes an autograder for one
# step (a unique prefix, such as ex1, is enough): it grades that step alone,
# and a student may upload its main.rs alone. Private cases: put them in
# tests/ of the copy you zip.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
workbook="$(dirname "$here")"
step=""
if [ "${1:-}" = "--step" ]; then
    [ $# -ge 2 ] || { echo "build_zip.sh: --step needs a step, such as ex1" >&2; exit 2; }
    matches=("$workbook"/exercises/"$2"*/)
    if [ ${#matches[@]} -ne 1 ] || [ ! -d "${matches[0]}" ]; then
        echo "build_zip.sh: --step $2 names no single step in exercises/" >&2
        exit 2
    fi
    step="$(basename "${matches[0]}")"
    shift 2
fi
out="$(realpath -m "${1:-$workbook/autograder.zip}")"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT

# The git blob id of a file, as `git hash-object` gives it.
blob_id() {
    { printf 'blob %s\0' "$(wc -c <"$1" | tr -d ' ')"; cat "$1"; } | sha1sum | cut -d' ' -f1
}

cp "$here/setup.sh" "$here/run_autograder" "$stage/"
chmod +x "$stage/setup.sh" "$stage/run_autograder"
for item in Cargo.toml Cargo.lock .cargo exercises support tests xtask; do
    cp -R "$workbook/$item" "$stage/"
done
rm -rf "$stage/xtask/tests" "$stage"/*/target "$stage/support"/*/target
# Without xtask/tests, the test targets its manifest declares must go too
# (cargo refuses a manifest naming a test file that is not there).
grep -q '^\[\[test\]\]$' "$stage/xtask/Cargo.toml" && {
    awk '/^\[\[test\]\]$/ { skip = 1; next } /^\[/ { skip = 0 } !skip' \
        "$stage/xtask/Cargo.toml" >"$stage/xtask/Cargo.toml.new"
    mv "$stage/xtask/Cargo.toml.new" "$stage/xtask/Cargo.toml"
}
# Without the solutions, the workspace must not list them (members are
# listed one per line).
grep -q '^    "solutions/' "$stage/Cargo.toml" || {
    echo "build_zip.sh: Cargo.toml no longer lists the solutions one per line, as expected" >&2
    exit 1
}
sed -i.orig '/^    "solutions\//d' "$stage/Cargo.toml"
rm "$stage/Cargo.toml.orig"

# Every step's src/ as released, and nothing else in it.
rm -rf "$stage"/exercises/*/src
while read -r id path; do
    case "$id" in '#'* | '') continue ;; esac
    mkdir -p "$(dirname "$stage/$path")"
    if [ -f "$workbook/$path" ] && [ "$(blob_id "$workbook/$path")" = "$id" ]; then
        cp "$workbook/$path" "$stage/$path"
    elif ! git -C "$workbook" cat-file blob "$id" >"$stage/$path" 2>/dev/null ||
        [ "$(blob_id "$stage/$path")" != "$id" ]; then
        echo "build_zip.sh: $path is not the released skeleton, and no git history here holds the release: restore it (git checkout -- $path)" >&2
        exit 1
    fi
done <"$workbook/xtask/released-skeletons.txt"
if [ -n "$step" ]; then
    # Read by run_autograder: grade this step alone.
    echo "$step" >"$stage/STEP"
fi

mkdir -p "$(dirname "$out")"
rm -f "$out"
cd "$stage"
if command -v zip >/dev/null; then
    zip -qr "$out" .
else
    python3 -m zipfile -c "$out" ./*  .cargo
fi
echo "wrote $out"
