-- Once per shard database: the transactional outbox and the consumer's dedup table.
CREATE TABLE IF NOT EXISTS outbox (
  message_id TEXT NOT NULL PRIMARY KEY,
  topic TEXT NOT NULL,
  user_id TEXT NOT NULL,
  payload TEXT NOT NULL,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  last_error TEXT NULL,
  created_at INTEGER NOT NULL,
  sent_at INTEGER NULL
);

CREATE INDEX IF NOT EXISTS idx_outbox_pending ON outbox (state, next_attempt_at);

CREATE TABLE IF NOT EXISTS processed_message (
  message_id TEXT NOT NULL PRIMARY KEY,
  processed_at INTEGER NOT NULL
);
