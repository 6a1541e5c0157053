-- Paged chat history (GET /rooms/{id}/history, the `history` op): a room's chat log by offset
-- without walking its other events, and its deletions by the message they name, so deleted
-- messages are left out with an index probe each.
CREATE INDEX room_events_chat ON room_events (room_id, event_offset)
    WHERE kind IN ('chat', 'system', 'gift');
CREATE INDEX room_events_deleted ON room_events (room_id, ((data ->> 'message_id')::bigint))
    WHERE kind = 'message_deleted';
