-- Once per sharded table ({t} is the table suffix, e.g. _001): takes, counters, win orders.
CREATE TABLE IF NOT EXISTS user_take{t} (
  take_id      BIGINT      NOT NULL PRIMARY KEY,
  user_id      VARCHAR(64) NOT NULL,
  activity_id  BIGINT      NOT NULL,
  strategy_id  BIGINT      NOT NULL,
  take_number  INT         NOT NULL,
  taken_at     BIGINT      NOT NULL,
  state        VARCHAR(8)  NOT NULL,
  idempotency_key VARCHAR(64) NULL,
  UNIQUE KEY uk_user_take_number (user_id, activity_id, take_number),
  UNIQUE KEY uk_user_take_idem (user_id, idempotency_key),
  KEY idx_user_take_state (user_id, activity_id, state),
  KEY idx_user_take_activity (activity_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS user_take_count{t} (
  user_id      VARCHAR(64) NOT NULL,
  activity_id  BIGINT      NOT NULL,
  take_limit   INT         NOT NULL,
  used         INT         NOT NULL,
  updated_at   BIGINT      NOT NULL,
  PRIMARY KEY (user_id, activity_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS win_order{t} (
  order_id       BIGINT        NOT NULL PRIMARY KEY,
  take_id        BIGINT        NOT NULL,
  user_id        VARCHAR(64)   NOT NULL,
  activity_id    BIGINT        NOT NULL,
  strategy_id    BIGINT        NOT NULL,
  mode           VARCHAR(16)   NOT NULL,
  award_id       BIGINT        NOT NULL,
  award_kind     VARCHAR(32)   NOT NULL,
  award_name     VARCHAR(128)  NOT NULL,
  award_content  VARCHAR(1024) NOT NULL,
  fallback       SMALLINT      NOT NULL,
  grant_state    VARCHAR(12)   NOT NULL,
  delivery       VARCHAR(1024) NULL,
  created_at     BIGINT        NOT NULL,
  granted_at     BIGINT        NULL,
  UNIQUE KEY uk_win_order_take (take_id),
  KEY idx_win_order_user (user_id, created_at),
  KEY idx_win_order_award (activity_id, award_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
