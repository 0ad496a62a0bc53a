-- Once per shard database: the stock fence. A reload of an activity's stock raises its
-- generation here before counting what is recorded; a draw record carrying an older
-- generation is refused, so a reload never counts a claim twice.
CREATE TABLE IF NOT EXISTS stock_fence (
  activity_id  INTEGER NOT NULL PRIMARY KEY,
  generation   INTEGER NOT NULL
);
