#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image
# (Ubuntu base image); the zip made by build_zip.sh is unpacked in
# $ROOT/source. It installs what grading needs and the base image lacks (a
# C linker, curl, the Rust toolchain through rustup), fetches every
# dependency, and builds the grader and the skeletons, so that a
# submission compiles only its own crates, offline.
#
# AUTOGRADER_ROOT (default /autograder) moves the layout; RUST_TOOLCHAIN
# (default stable; the workbook needs 1.85 or later) picks the toolchain.
set -euo pipefail

root="${AUTOGRADER_ROOT:-/autograder}"
toolchain="${RUST_TOOLCHAIN:-stable}"

if command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends ca-certificates curl build-essential
fi
if ! command -v rustup >/dev/null && [ ! -x "$HOME/.cargo/bin/rustup" ]; then
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
        sh -s -- -y --profile minimal --default-toolchain "$toolchain"
fi
. "$HOME/.cargo/env"

cd "$root/source"
cargo fetch
# The grader, then a grading of an empty submission: it lays out the
# checkout submissions are graded in and builds every dependency of the
# steps once, the way grading builds them (the store in
# $root/source/target/xtask-grade), and shows in the setup log that grading
# works in this image (each step "missing", scoring 0).
cargo build -p xtask
empty="$(mktemp -d)"
cargo xtask grade --submission "$empty" || true
rmdir "$empty"
