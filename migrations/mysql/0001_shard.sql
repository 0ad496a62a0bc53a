-- Once per shard database: the transactional outbox and the consumer's dedup table.
CREATE TABLE IF NOT EXISTS outbox (
  message_id       VARCHAR(64)  NOT NULL PRIMARY KEY,
  topic            VARCHAR(32)  NOT NULL,
  user_id          VARCHAR(64)  NOT NULL,
  payload          VARCHAR(8000) NOT NULL,
  state            VARCHAR(12)  NOT NULL,
  attempts         INT          NOT NULL DEFAULT 0,
  next_attempt_at  BIGINT       NOT NULL,
  last_error       VARCHAR(512) NULL,
  created_at       BIGINT       NOT NULL,
  sent_at          BIGINT       NULL,
  KEY idx_outbox_pending (state, next_attempt_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS processed_message (
  message_id    VARCHAR(64) NOT NULL PRIMARY KEY,
  processed_at  BIGINT      NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
