-- Global (unsharded) configuration: activities, strategies, awards, rule trees.
-- No TEXT columns: the sqlx Any driver reads MariaDB TEXT as bytes, VARCHAR as text.
-- Times are milliseconds since the Unix epoch, rates are integer units of 1e-8.
CREATE TABLE IF NOT EXISTS activity (
  activity_id   BIGINT       NOT NULL PRIMARY KEY,
  name          VARCHAR(128) NOT NULL,
  description   VARCHAR(4096) NOT NULL,
  begin_at      BIGINT       NOT NULL,
  end_at        BIGINT       NOT NULL,
  stock         BIGINT       NOT NULL,
  stock_left    BIGINT       NOT NULL,
  take_limit    INT          NOT NULL,
  strategy_id   BIGINT       NOT NULL,
  state         VARCHAR(20)  NOT NULL,
  creator       VARCHAR(64)  NOT NULL,
  created_at    BIGINT       NOT NULL,
  updated_at    BIGINT       NOT NULL,
  KEY idx_activity_state (state, begin_at),
  KEY idx_activity_strategy (strategy_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS strategy (
  strategy_id        BIGINT      NOT NULL PRIMARY KEY,
  mode               VARCHAR(16) NOT NULL,
  fallback_award_id  BIGINT      NULL,
  created_at         BIGINT      NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS strategy_award (
  strategy_id  BIGINT NOT NULL,
  award_id     BIGINT NOT NULL,
  position     INT    NOT NULL,
  rate_units   BIGINT NOT NULL,
  award_count  BIGINT NOT NULL,
  award_left   BIGINT NOT NULL,
  PRIMARY KEY (strategy_id, award_id),
  UNIQUE KEY uk_strategy_award_position (strategy_id, position)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS award (
  award_id  BIGINT        NOT NULL PRIMARY KEY,
  kind      VARCHAR(32)   NOT NULL,
  name      VARCHAR(128)  NOT NULL,
  content   VARCHAR(1024) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS rule_tree (
  tree_id     BIGINT       NOT NULL PRIMARY KEY,
  name        VARCHAR(128) NOT NULL,
  root_node   BIGINT       NOT NULL,
  created_at  BIGINT       NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS rule_tree_node (
  tree_id   BIGINT       NOT NULL,
  node_id   BIGINT       NOT NULL,
  kind      VARCHAR(8)   NOT NULL,
  rule_key  VARCHAR(64)  NULL,
  value     VARCHAR(256) NULL,
  PRIMARY KEY (tree_id, node_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS rule_tree_line (
  tree_id    BIGINT        NOT NULL,
  line_no    INT           NOT NULL,
  from_node  BIGINT        NOT NULL,
  to_node    BIGINT        NOT NULL,
  op         VARCHAR(8)    NOT NULL,
  value      VARCHAR(1024) NOT NULL,
  PRIMARY KEY (tree_id, line_no)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Leases let one instance at a time run a scheduled job.
CREATE TABLE IF NOT EXISTS job_lease (
  job          VARCHAR(64)  NOT NULL PRIMARY KEY,
  holder       VARCHAR(128) NOT NULL,
  lease_until  BIGINT       NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
