"""An archive on disk: containment, the lock, the journal, walking, undo."""
