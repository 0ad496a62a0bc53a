-- The scheduler pages through running activities by id and asks for those whose move is due
-- (begun, or ended): indexes so that a round costs what is running or due, not what is stored.
CREATE INDEX IF NOT EXISTS idx_activity_state_id ON activity (state, activity_id);
CREATE INDEX IF NOT EXISTS idx_activity_state_end ON activity (state, end_at);
