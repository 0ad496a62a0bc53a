-- The stock ledger on database rows ([stock] strategy = "database"): the same state the Redis
-- ledger keeps in keys, one row per key. A claim locks its activity's row, so claims of one
-- activity run one after another. expires_at (ms) ends every row as a Redis key's TTL would.
CREATE TABLE IF NOT EXISTS stock_ledger (
  activity_id  BIGINT  NOT NULL PRIMARY KEY,
  generation   BIGINT  NOT NULL,
  stock_left   BIGINT  NOT NULL,
  complete     BIGINT  NOT NULL,
  expires_at   BIGINT  NOT NULL,
  KEY idx_stock_ledger_expiry (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS stock_ledger_award (
  activity_id  BIGINT  NOT NULL,
  award_id     BIGINT  NOT NULL,
  award_left   BIGINT  NOT NULL,
  PRIMARY KEY (activity_id, award_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS stock_ledger_user (
  activity_id  BIGINT      NOT NULL,
  user_id      VARCHAR(64) NOT NULL,
  generation   BIGINT      NOT NULL,
  used         BIGINT      NOT NULL,
  expires_at   BIGINT      NOT NULL,
  PRIMARY KEY (activity_id, user_id),
  KEY idx_stock_ledger_user_expiry (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- state: 'held' (granted; award_id, fallback and exhausted are its outcome) or 'withdrawn'
-- (given back, or a release that arrived first: the claim takes nothing).
CREATE TABLE IF NOT EXISTS stock_ledger_claim (
  activity_id  BIGINT      NOT NULL,
  claim_id     BIGINT      NOT NULL,
  user_id      VARCHAR(64) NOT NULL,
  state        VARCHAR(9)  NOT NULL,
  took         BIGINT      NOT NULL,
  award_id     BIGINT      NULL,
  fallback     BIGINT      NOT NULL,
  exhausted    BIGINT      NOT NULL,
  generation   BIGINT      NOT NULL,
  claimed_at   BIGINT      NOT NULL,
  settled      BIGINT      NOT NULL,
  expires_at   BIGINT      NOT NULL,
  PRIMARY KEY (activity_id, claim_id),
  KEY idx_stock_ledger_claim_pending (activity_id, state, settled, claimed_at),
  KEY idx_stock_ledger_claim_expiry (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
