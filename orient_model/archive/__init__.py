"""An archive on disk: atomic writes, containment, the lock, the journal, walking, undo."""
