#!/usr/bin/env bash
# Copy the 300-W training and test faces out of local git copies of their public repositories into
# DATA (outside this repository: the licences are research-only, the images never get committed).
#
#   tools/extract_300w.sh SPINKOO_GIT TNTRUNG_GIT DATA
#
# SPINKOO_GIT: a git directory of github.com/Spinkoo/Face-alignement (commit e08a16aa; any clone);
# TNTRUNG_GIT: a git directory of github.com/tntrung/sdm_face_alignment (commit 0478bd01 is used).
# Writes DATA/300w_train/{afw,helen,lfpw} (the training faces) and DATA/300w_test/helen (the test
# set). LFPW's test split is reserved (never read) and is NOT extracted. Files whose blob is
# absent from a partial copy are listed as MISSING and skipped (the importer then reports their
# .pts as "no image beside it").
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 SPINKOO_GIT TNTRUNG_GIT DATA" >&2; exit 2; }
spinkoo=$1; tntrung=$2; data=$3
SPINKOO_COMMIT=e08a16aa91ad771df34e75f70bc5aaf20238ff6a
TNTRUNG_COMMIT=0478bd013e43dec9197411d45617cd30a20876fb

extract() {  # repo commit folder-in-repo destination-folder
  local repo=$1 commit=$2 dir=$3 out=$4
  mkdir -p "$out"
  git -C "$repo" ls-tree "$commit" "$dir/" | while read -r _mode _type sha path; do
    name=$(basename "$path")
    if git -C "$repo" cat-file blob "$sha" > "$out/.$name.tmp" 2>/dev/null; then
      mv "$out/.$name.tmp" "$out/$name"
    else
      rm -f "$out/.$name.tmp"; echo "MISSING $path"
    fi
  done
}

extract "$spinkoo" "$SPINKOO_COMMIT" afw/afw        "$data/300w_train/afw"
extract "$spinkoo" "$SPINKOO_COMMIT" helen/trainset "$data/300w_train/helen"
extract "$tntrung" "$TNTRUNG_COMMIT" data/lfpw/trainset "$data/300w_train/lfpw"
extract "$spinkoo" "$SPINKOO_COMMIT" helen/testset  "$data/300w_test/helen"
for d in "$data"/300w_train/* "$data"/300w_test/*; do
  echo "$d: $(ls "$d" | grep -c '\.pts$') .pts files"
done
