-- Paged chat history (GET /rooms/{id}/history, the `history` op) leaves out deleted messages:
-- find a room's deletions by the message they name without scanning its whole log.
CREATE INDEX room_events_deleted ON room_events (room_id, ((data ->> 'message_id')::bigint))
    WHERE kind = 'message_deleted';
