#!/usr/bin/env bash
# Fetch what round1_rebuild.py, round3.py, round4.py, round5.py and round6.py read: the Debian packages (downloaded with
# apt-get, unpacked with dpkg -x, nothing installed) and the GitHub repositories at their pinned
# commits (repos.json: rounds 3 to 6; jantic/DeOldify is pinned to an old commit, the last one
# before its test images moved to Git LFS; rathull/CTFs and afroozsheikh/Intel-Image-Classifier to
# old commits that still hold MiniPlaces and the full-size Intel photos).
#   DEBS=/tmp/pt/debs REPOS=/tmp/gh bash fetch_sources.sh
# Without network access to GitHub, set REPO_MIRRORS to a folder of local copies of the repositories
# (git directories, bare or not, named <owner>+<name>): each pinned commit's files are then written
# to REPOS/<owner>+<name> by export_tree.py (no .git there; blobs a copy lacks are listed in
# REPOS/<owner>+<name>.missing) instead of cloning, and elementary's history is read from its copy.
# Run `apt-get update` once first. Needs a Debian 12 (bookworm) archive: the round-1 photos are
# checked against the versions the default model's card lists.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
DEBS="${DEBS:-/tmp/pt/debs}"
REPOS="${REPOS:-/tmp/gh}"
packages=(tuxpaint-stamps-default gcompris-qt-data stellarium-data kphotoalbum enlightenment-data lxqt-themes
          tuxpaint-data lomiri-wallpapers-16.04 libjxl-testdata palapeli-data python3-scipy scratch
          ukui-wallpapers)
mkdir -p "$DEBS/x" "$REPOS"
(cd "$DEBS" && apt-get download "${packages[@]}")
for p in "${packages[@]}"; do
  rm -rf "$DEBS/x/$p" && mkdir -p "$DEBS/x/$p"
  dpkg -x "$(ls "$DEBS/${p}"_*.deb | head -n1)" "$DEBS/x/$p"
done
python3 - "$here/repos.json" <<'PY' | while read -r repo commit; do
import json, sys
for repo, commit in json.load(open(sys.argv[1])).items():
    print(repo, commit)
PY
  dir="$REPOS/${repo/\//+}"
  if [ -n "${REPO_MIRRORS:-}" ]; then
    copy="$REPO_MIRRORS/${repo/\//+}"
    [ -d "$copy/.git" ] && copy="$copy/.git"
    python3 "$here/export_tree.py" "$copy" "$commit" "$dir" </dev/null
    continue
  fi
  [ -d "$dir/.git" ] || git clone --quiet "https://github.com/$repo" "$dir"
  git -C "$dir" checkout --quiet "$commit"
done
# Round 5: elementary/wallpapers' photos from its history, each at the commit listed in
# elementary_history.json, written to REPOS/elementary+wallpapers.history/<commit[:12]>/<path>
hist="$REPOS/elementary+wallpapers.history"
history_git=(git -C "$REPOS/elementary+wallpapers")
if [ -n "${REPO_MIRRORS:-}" ]; then
  copy="$REPO_MIRRORS/elementary+wallpapers"
  [ -d "$copy/.git" ] && copy="$copy/.git"
  history_git=(git --git-dir "$copy")
fi
python3 - "$here/elementary_history.json" <<'PY' | while IFS=$'\t' read -r commit path; do
import json, sys
for commit, path in json.load(open(sys.argv[1])):
    print(f"{commit}\t{path}")
PY
  out="$hist/${commit:0:12}/$path"
  mkdir -p "$(dirname "$out")"
  "${history_git[@]}" show "$commit:$path" > "$out"
done
