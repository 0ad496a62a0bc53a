-- Snowflake worker ids leased by the running instances: no two live instances hold the same
-- one. high_water is the highest millisecond (Unix) at which a holder may have issued ids;
-- the next holder issues above it, even with a clock stepped back.
CREATE TABLE IF NOT EXISTS worker_lease (
  worker_id    INT          NOT NULL PRIMARY KEY,
  holder       VARCHAR(128) NOT NULL,
  lease_until  BIGINT       NOT NULL,
  high_water   BIGINT       NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
