-- Once per sharded table ({t} is the table suffix, e.g. _001): takes, counters, win orders.
CREATE TABLE IF NOT EXISTS user_take{t} (
  take_id INTEGER NOT NULL PRIMARY KEY,
  user_id TEXT NOT NULL,
  activity_id INTEGER NOT NULL,
  strategy_id INTEGER NOT NULL,
  take_number INTEGER NOT NULL,
  taken_at INTEGER NOT NULL,
  state TEXT NOT NULL,
  idempotency_key TEXT NULL
);

CREATE UNIQUE INDEX IF NOT EXISTS uk_user_take_number{t} ON user_take{t} (user_id, activity_id, take_number);

CREATE UNIQUE INDEX IF NOT EXISTS uk_user_take_idem{t} ON user_take{t} (user_id, idempotency_key);

CREATE INDEX IF NOT EXISTS idx_user_take_state{t} ON user_take{t} (user_id, activity_id, state);

CREATE INDEX IF NOT EXISTS idx_user_take_activity{t} ON user_take{t} (activity_id);

CREATE TABLE IF NOT EXISTS user_take_count{t} (
  user_id TEXT NOT NULL,
  activity_id INTEGER NOT NULL,
  take_limit INTEGER NOT NULL,
  used INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (user_id, activity_id)
);

CREATE TABLE IF NOT EXISTS win_order{t} (
  order_id INTEGER NOT NULL PRIMARY KEY,
  take_id INTEGER NOT NULL,
  user_id TEXT NOT NULL,
  activity_id INTEGER NOT NULL,
  strategy_id INTEGER NOT NULL,
  mode TEXT NOT NULL,
  award_id INTEGER NOT NULL,
  award_kind TEXT NOT NULL,
  award_name TEXT NOT NULL,
  award_content TEXT NOT NULL,
  fallback INTEGER NOT NULL,
  grant_state TEXT NOT NULL,
  delivery TEXT NULL,
  created_at INTEGER NOT NULL,
  granted_at INTEGER NULL
);

CREATE UNIQUE INDEX IF NOT EXISTS uk_win_order_take{t} ON win_order{t} (take_id);

CREATE INDEX IF NOT EXISTS idx_win_order_user{t} ON win_order{t} (user_id, created_at);

CREATE INDEX IF NOT EXISTS idx_win_order_award{t} ON win_order{t} (activity_id, award_id);
