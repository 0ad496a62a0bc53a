-- The stock ledger on database rows ([stock] strategy = "database"): the same state the Redis
-- ledger keeps in keys, one row per key. SQLite serialises writers (BEGIN IMMEDIATE), so
-- claims run one after another. expires_at (ms) ends every row as a Redis key's TTL would.
CREATE TABLE IF NOT EXISTS stock_ledger (
  activity_id  INTEGER NOT NULL PRIMARY KEY,
  generation   INTEGER NOT NULL,
  stock_left   INTEGER NOT NULL,
  complete     INTEGER NOT NULL,
  expires_at   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_stock_ledger_expiry ON stock_ledger (expires_at);

CREATE TABLE IF NOT EXISTS stock_ledger_award (
  activity_id  INTEGER NOT NULL,
  award_id     INTEGER NOT NULL,
  award_left   INTEGER NOT NULL,
  PRIMARY KEY (activity_id, award_id)
);

CREATE TABLE IF NOT EXISTS stock_ledger_user (
  activity_id  INTEGER NOT NULL,
  user_id      TEXT    NOT NULL,
  generation   INTEGER NOT NULL,
  used         INTEGER NOT NULL,
  expires_at   INTEGER NOT NULL,
  PRIMARY KEY (activity_id, user_id)
);
CREATE INDEX IF NOT EXISTS idx_stock_ledger_user_expiry ON stock_ledger_user (expires_at);

-- state: 'held' (granted; award_id, fallback and exhausted are its outcome) or 'withdrawn'
-- (given back, or a release that arrived first: the claim takes nothing).
CREATE TABLE IF NOT EXISTS stock_ledger_claim (
  activity_id  INTEGER NOT NULL,
  claim_id     INTEGER NOT NULL,
  user_id      TEXT    NOT NULL,
  state        TEXT    NOT NULL,
  took         INTEGER NOT NULL,
  award_id     INTEGER NULL,
  fallback     INTEGER NOT NULL,
  exhausted    INTEGER NOT NULL,
  generation   INTEGER NOT NULL,
  claimed_at   INTEGER NOT NULL,
  settled      INTEGER NOT NULL,
  expires_at   INTEGER NOT NULL,
  PRIMARY KEY (activity_id, claim_id)
);
CREATE INDEX IF NOT EXISTS idx_stock_ledger_claim_pending ON stock_ledger_claim (activity_id, state, settled, claimed_at);
CREATE INDEX IF NOT EXISTS idx_stock_ledger_claim_expiry ON stock_ledger_claim (expires_at);
