#!/usr/bin/env bash
# Checks an ec2-bpipe stream of format version 2 without ec2-bpipe: GNU tar, dd, sha256sum, jq.
# Usage: check-stream.sh STREAM.tar   (prints one line per check; exits 1 at the first mismatch)
# docs/FORMAT.md explains each step.
set -eu
stream=$(realpath "$1")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
tar -xf "$stream"
jq -e '.formatVersion == 2' manifest.json >/dev/null || { echo "not a version 2 stream"; exit 1; }
jq -e '.complete == true' end.json >/dev/null || { echo "end.json does not mark the stream complete"; exit 1; }

# 1. Every JSON member against its digest in end.json.
jq -r '.members[] | "\(.sha256)  \(.name)"' end.json | sha256sum --quiet -c - || exit 1
echo "members: ok"

# 2. Per volume, both sums from the image and the sparse map.
hex() { printf "$(sed 's/../\\x&/g')"; }
for vol in $(jq -r '.volumes[]' manifest.json); do
  # tar -tvvR names the block of the member's ustar header; its data, which opens with the sparse
  # map (count, then offset and size per line), starts one record later.
  n=$(tar -tvvR -f "$stream" | awk -v m="$vol.ebs" '$NF == m { sub(":", "", $2); print $2 }')
  data() { dd if="$stream" bs=512 skip=$((n + 1)) status=none; }
  count=$(data | head -n 1)
  data | head -n $((2 * count + 1)) | tail -n +2 | head -n $((2 * count - 2)) | paste - - |
    while read -r offset size; do
      index=$((offset / 524288))
      digest=$(dd if="$vol.ebs" bs=524288 skip="$index" count=1 status=none | sha256sum | cut -c1-64)
      printf '%016x%s\n' "$index" "$digest"
    done >"$vol.regions"
  checksum=$(cut -c17- "$vol.regions" | tr -d '\n' | hex | sha256sum | cut -c1-64 | hex | base64)
  indexed=$(tr -d '\n' <"$vol.regions" | hex | sha256sum | cut -c1-64)
  [ "$checksum" = "$(jq -r .checksum "$vol.sum.json")" ] || { echo "$vol: checksum differs"; exit 1; }
  [ "$indexed" = "$(jq -r .indexedSha256 "$vol.sum.json")" ] || { echo "$vol: indexedSha256 differs"; exit 1; }
  echo "$vol: ok sha256-indexed=$indexed"
done
