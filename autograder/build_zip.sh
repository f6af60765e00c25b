#!/usr/bin/env bash
# Makes the Gradescope autograder zip: setup.sh and run_autograder at its
# top, beside the workbook (its manifest, exercises, support crates, grading
# cases and xtask). Build output, history and the reference solutions stay
# out: a submission's programs must find no answer key on the grading
# machine. Upload the zip as a Gradescope "zip file upload" autograder.
#
# Usage: autograder/build_zip.sh [OUT.zip]   (default: autograder.zip in the
# workbook's root). Private cases: put them in tests/ of the copy you zip.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
workbook="$(dirname "$here")"
out="$(realpath -m "${1:-$workbook/autograder.zip}")"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT

cp "$here/setup.sh" "$here/run_autograder" "$stage/"
chmod +x "$stage/setup.sh" "$stage/run_autograder"
for item in Cargo.toml Cargo.lock .cargo exercises support tests xtask; do
    cp -R "$workbook/$item" "$stage/"
done
rm -rf "$stage/xtask/tests" "$stage"/*/target "$stage/support"/*/target
# Without the solutions, the workspace must not list them (members are
# listed one per line).
grep -q '^    "solutions/' "$stage/Cargo.toml" || {
    echo "build_zip.sh: Cargo.toml no longer lists the solutions one per line, as expected" >&2
    exit 1
}
sed -i.orig '/^    "solutions\//d' "$stage/Cargo.toml"
rm "$stage/Cargo.toml.orig"

rm -f "$out"
cd "$stage"
if command -v zip >/dev/null; then
    zip -qr "$out" .
else
    python3 -m zipfile -c "$out" ./*  .cargo
fi
echo "wrote $out"
