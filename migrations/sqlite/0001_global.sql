-- Global (unsharded) configuration: activities, strategies, awards, rule trees.
-- Times are milliseconds since the Unix epoch, rates are integer units of 1e-8.
CREATE TABLE IF NOT EXISTS activity (
  activity_id INTEGER NOT NULL PRIMARY KEY,
  name TEXT NOT NULL,
  description TEXT NOT NULL,
  begin_at INTEGER NOT NULL,
  end_at INTEGER NOT NULL,
  stock INTEGER NOT NULL,
  stock_left INTEGER NOT NULL,
  take_limit INTEGER NOT NULL,
  strategy_id INTEGER NOT NULL,
  state TEXT NOT NULL,
  creator TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);

CREATE INDEX IF NOT EXISTS idx_activity_state ON activity (state, begin_at);

CREATE INDEX IF NOT EXISTS idx_activity_strategy ON activity (strategy_id);

CREATE TABLE IF NOT EXISTS strategy (
  strategy_id INTEGER NOT NULL PRIMARY KEY,
  mode TEXT NOT NULL,
  fallback_award_id INTEGER NULL,
  created_at INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS strategy_award (
  strategy_id INTEGER NOT NULL,
  award_id INTEGER NOT NULL,
  position INTEGER NOT NULL,
  rate_units INTEGER NOT NULL,
  award_count INTEGER NOT NULL,
  award_left INTEGER NOT NULL,
  PRIMARY KEY (strategy_id, award_id)
);

CREATE UNIQUE INDEX IF NOT EXISTS uk_strategy_award_position ON strategy_award (strategy_id, position);

CREATE TABLE IF NOT EXISTS award (
  award_id INTEGER NOT NULL PRIMARY KEY,
  kind TEXT NOT NULL,
  name TEXT NOT NULL,
  content TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS rule_tree (
  tree_id INTEGER NOT NULL PRIMARY KEY,
  name TEXT NOT NULL,
  root_node INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS rule_tree_node (
  tree_id INTEGER NOT NULL,
  node_id INTEGER NOT NULL,
  kind TEXT NOT NULL,
  rule_key TEXT NULL,
  value TEXT NULL,
  PRIMARY KEY (tree_id, node_id)
);

CREATE TABLE IF NOT EXISTS rule_tree_line (
  tree_id INTEGER NOT NULL,
  line_no INTEGER NOT NULL,
  from_node INTEGER NOT NULL,
  to_node INTEGER NOT NULL,
  op TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (tree_id, line_no)
);

-- Leases let one instance at a time run a scheduled job.
CREATE TABLE IF NOT EXISTS job_lease (
  job TEXT NOT NULL PRIMARY KEY,
  holder TEXT NOT NULL,
  lease_until INTEGER NOT NULL
);
