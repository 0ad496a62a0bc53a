-- Once per shard database: what each activity recorded here, kept by the transactions that
-- write takes and orders, so counting an activity's records (the stock sync, a stock
-- reload) reads a few rows instead of every take. award_id 0 counts the takes that are not
-- void; any other award_id counts that award's orders. A transaction adds to one of several
-- parts ('w0'..'w15'), so concurrent writers seldom wait on one row; 'b_NNN' holds what
-- table _NNN held when this table was created. An activity's count is the sum of its parts.
CREATE TABLE IF NOT EXISTS activity_tally (
  activity_id  BIGINT      NOT NULL,
  award_id     BIGINT      NOT NULL,
  part         VARCHAR(8)  NOT NULL,
  n            BIGINT      NOT NULL,
  PRIMARY KEY (activity_id, award_id, part)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
