#!/bin/sh
# Meson's custom_target for the Rust library: runs cargo, copies the cdylib
# to meson's output and turns cargo's dep-info into a depfile for ninja, so
# the target is rebuilt whenever a source file cargo read has changed.
#   cargo-build.sh CARGO MANIFEST TARGET_DIR OUTPUT DEPFILE
set -eu
cargo=$1 manifest=$2 target_dir=$3 output=$4 depfile=$5

"$cargo" build --release --lib --manifest-path "$manifest" --target-dir "$target_dir"

built=$target_dir/release/libgiodtlsopenssl.so
cp "$built" "$output.tmp"
mv -f "$output.tmp" "$output"

# Cargo's dep-info holds one rule for the crate ("/abs/…/libx.rlib: deps…",
# naming one of its artifacts; the .so has the same sources); ninja wants
# a rule for meson's output.
awk -v artifact="$target_dir/release/libgiodtlsopenssl." -v out="$output" '
    index($0, artifact) == 1 && (colon = index($0, ": ")) > 0 {
        print out ":" substr($0, colon + 1); found = 1; exit
    }
    END { if (!found) exit 1 }' "$target_dir/release/libgiodtlsopenssl.d" >"$depfile" || {
    echo "cargo-build.sh: no rule for the crate in $target_dir/release/libgiodtlsopenssl.d" >&2
    exit 1
}
