"""Media: ingest, transcoding, HLS packaging (a later issue)."""
