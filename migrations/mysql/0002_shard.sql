-- Once per shard database: the stock fence. A reload of an activity's stock raises its
-- generation here before counting what is recorded; a draw record carrying an older
-- generation is refused, so a reload never counts a claim twice.
CREATE TABLE IF NOT EXISTS stock_fence (
  activity_id  BIGINT NOT NULL PRIMARY KEY,
  generation   BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
