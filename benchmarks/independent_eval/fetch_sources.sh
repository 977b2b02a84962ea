#!/usr/bin/env bash
# Fetch what gather.py reads: the Debian packages (downloaded with apt-get,
# unpacked with dpkg -x, nothing installed) and the GitHub repositories at their pinned commits.
#   EVAL_DEBS=/tmp/evaldebs REPOS=/tmp/gh bash fetch_sources.sh
# Without network access to GitHub, set REPO_MIRRORS to a folder of local copies of the repositories
# (git directories, bare or not, named <owner>+<name>): each pinned commit's files are then written
# to REPOS/<owner>+<name> by scripts/gather_photos/export_tree.py (no .git there; blobs a copy lacks
# are listed in REPOS/<owner>+<name>.missing) instead of cloning.
# Run `apt-get update` once first (Debian 12, bookworm: plasma-workspace-wallpapers 4:5.27.5-2,
# mate-backgrounds 1.26.0-1, lomiri-wallpapers-20.04 20.04.0-2, visp-images-data 3.5.0-1, opencv-doc 4.6.0+dfsg-12, libdlib19.1 19.24+dfsg-1).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
DEBS="${EVAL_DEBS:-/tmp/evaldebs}"
REPOS="${REPOS:-/tmp/gh}"
packages=(plasma-workspace-wallpapers mate-backgrounds lomiri-wallpapers-20.04 visp-images-data opencv-doc libdlib19.1)
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
    python3 "$here/../../scripts/gather_photos/export_tree.py" "$copy" "$commit" "$dir" </dev/null
    continue
  fi
  [ -d "$dir/.git" ] || git clone --quiet "https://github.com/$repo" "$dir"
  git -C "$dir" checkout --quiet "$commit"
done
