"""Media: ingest, transcoding, HLS packaging. So far the ladder, playlists and segment store."""
