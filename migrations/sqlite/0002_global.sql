-- Snowflake worker ids leased by the running instances: no two live instances hold the same
-- one. high_water is the highest millisecond (Unix) at which a holder may have issued ids;
-- the next holder issues above it, even with a clock stepped back.
CREATE TABLE IF NOT EXISTS worker_lease (
  worker_id    INTEGER NOT NULL PRIMARY KEY,
  holder       TEXT    NOT NULL,
  lease_until  INTEGER NOT NULL,
  high_water   INTEGER NOT NULL
);
