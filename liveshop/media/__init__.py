"""Media: RTMP and WHIP ingest, the live stream and its transcoder, HLS packaging,
recording, WHEP and restreaming."""
