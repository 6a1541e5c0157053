-- Channels and show operations: programming (shows, recurring templates, creator
-- availability), follows and reminders, run-of-show cues, operator audit, show analytics.
ALTER TABLE channels
    ADD COLUMN category     text NOT NULL DEFAULT 'general',
    ADD COLUMN region       text NOT NULL DEFAULT 'global',
    ADD COLUMN tz           text NOT NULL DEFAULT 'UTC',
    ADD COLUMN artwork_url  text,
    ADD COLUMN description  text NOT NULL DEFAULT '',
    -- An operator's emergency override (cut to slate, switch stream), until lifted.
    ADD COLUMN override     jsonb;

-- Recurring templates ("every weekday at 20:00 Europe/London"); their shows are booked
-- ahead up to booked_until, a rolling horizon the channel actor extends.
CREATE TABLE show_templates (
    id            text PRIMARY KEY,
    channel_id    text NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    title         text NOT NULL,
    weekdays      smallint[] NOT NULL,
    at_local      time NOT NULL,
    duration      double precision NOT NULL,
    tz            text NOT NULL,
    first_day     date NOT NULL,
    last_day      date,
    hosts         text[] NOT NULL DEFAULT '{}',
    products      text[] NOT NULL DEFAULT '{}',
    series_id     text,
    season        integer,
    room_id       text REFERENCES rooms (id),
    booked_until  double precision NOT NULL,
    occurrences   integer NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Times are epoch seconds (double precision), as the domain uses them.
CREATE TABLE shows (
    id                 text PRIMARY KEY,
    channel_id         text NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    title              text NOT NULL,
    kind               text NOT NULL CHECK (kind IN ('live', 'premiere')),
    status             text NOT NULL DEFAULT 'scheduled'
                       CHECK (status IN ('scheduled', 'live', 'ended', 'cancelled')),
    starts_at          double precision NOT NULL,
    ends_at            double precision NOT NULL CHECK (ends_at > starts_at),
    ended_at           double precision,
    hosts              text[] NOT NULL DEFAULT '{}',
    products           text[] NOT NULL DEFAULT '{}',
    series_id          text,
    season             integer,
    -- A premiere's recording; a live show's recording once it has ended (replays).
    recording          text,
    recording_seconds  double precision,
    room_id            text REFERENCES rooms (id),
    template_id        text REFERENCES show_templates (id) ON DELETE SET NULL,
    -- RunOfShow.to_state(): the cues and the log of every cue fired, skipped or moved.
    run_of_show        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX shows_channel_time ON shows (channel_id, starts_at);
CREATE INDEX shows_hosts ON shows USING gin (hosts);
CREATE INDEX shows_series ON shows (series_id, starts_at) WHERE series_id IS NOT NULL;
CREATE INDEX shows_room ON shows (room_id, starts_at) WHERE room_id IS NOT NULL;

-- When a creator can host: weekly windows in their own time zone (none: any time).
CREATE TABLE creator_availability (
    user_id  text PRIMARY KEY,
    tz       text NOT NULL,
    windows  jsonb NOT NULL
);

-- Viewers following a show or a whole series; reminders go to them.
CREATE TABLE follows (
    user_id      text NOT NULL,
    target_kind  text NOT NULL CHECK (target_kind IN ('show', 'series')),
    target_id    text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (target_kind, target_id, user_id)
);
CREATE INDEX follows_user ON follows (user_id);

-- Each reminder (show, lead) is sent once, whatever restarts the channel actor has.
CREATE TABLE show_reminders (
    show_id  text NOT NULL REFERENCES shows (id) ON DELETE CASCADE,
    lead     double precision NOT NULL,
    sent_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (show_id, lead)
);

-- Operators' emergency controls: who, when, why, what.
CREATE TABLE channel_audit (
    id          bigserial PRIMARY KEY,
    channel_id  text NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    show_id     text,
    action      text NOT NULL,
    by_user     text NOT NULL,
    reason      text NOT NULL,
    at          double precision NOT NULL,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX channel_audit_channel ON channel_audit (channel_id, id);

-- Show analytics: the latest report and what the channel actor needs to carry on counting
-- after a restart, plus one report per minute for reports afterwards.
CREATE TABLE show_analytics (
    show_id     text PRIMARY KEY REFERENCES shows (id) ON DELETE CASCADE,
    report      jsonb NOT NULL,
    state       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE show_analytics_minutes (
    show_id  text NOT NULL REFERENCES shows (id) ON DELETE CASCADE,
    minute   integer NOT NULL,
    report   jsonb NOT NULL,
    PRIMARY KEY (show_id, minute)
);

-- Adds to cart attributed to the room they happened in (show analytics).
CREATE TABLE cart_adds (
    id        bigserial PRIMARY KEY,
    room_id   text NOT NULL,
    user_id   text NOT NULL,
    sku       text NOT NULL,
    quantity  integer NOT NULL CHECK (quantity > 0),
    at        double precision NOT NULL
);
CREATE INDEX cart_adds_room ON cart_adds (room_id, at);
-- Orders placed in a room during a show are found by orders_room (0005).
