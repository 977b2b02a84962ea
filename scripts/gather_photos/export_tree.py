"""Write one commit's files from a local copy of a git repository into a folder (no .git there).

    python3 export_tree.py GIT_DIR COMMIT DEST

Used by fetch_sources.sh (here and in benchmarks/independent_eval) when REPO_MIRRORS names a folder
of local copies instead of cloning. Such a copy may lack some blobs (large files are often left out
of copies): each one the copy lacks is skipped, listed on stderr and in DEST.missing (one path a
line), where a checkout would stop at the first. DEST is emptied first. Symbolic links are written
as links, submodules are skipped.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def main() -> None:
    git_dir, commit, dest = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    git = ["git", "--git-dir", git_dir]
    entries = []
    for line in subprocess.check_output(git + ["ls-tree", "-r", "-z", commit]).split(b"\0"):
        if line:
            meta, path = line.split(b"\t", 1)
            mode, kind, sha = meta.decode().split()
            if kind == "blob":
                entries.append((mode, sha, os.fsdecode(path)))
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    missing = []
    with subprocess.Popen(git + ["cat-file", "--batch"], stdin=subprocess.PIPE, stdout=subprocess.PIPE) as p:
        for mode, sha, path in entries:
            p.stdin.write(sha.encode() + b"\n")
            p.stdin.flush()
            header = p.stdout.readline().split()
            if header[-1] == b"missing":
                missing.append(path)
                continue
            data = p.stdout.read(int(header[2]))
            p.stdout.read(1)  # the newline after each object
            out = dest / path
            out.parent.mkdir(parents=True, exist_ok=True)
            if mode == "120000":
                os.symlink(os.fsdecode(data), out)
            else:
                out.write_bytes(data)
        p.stdin.close()
    Path(f"{dest}.missing").write_text("".join(f"{m}\n" for m in missing))
    for m in missing:
        print(f"{dest.name}: the local copy lacks {m}", file=sys.stderr)
    print(f"{dest.name}: {len(entries) - len(missing)} files at {commit[:12]}, {len(missing)} absent from the copy")


if __name__ == "__main__":
    main()
