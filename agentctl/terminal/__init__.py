"""The terminal face: the command line, and the views it draws (tables, the run view, the
event stream, transcripts)."""
