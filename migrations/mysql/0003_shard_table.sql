-- Once per sharded table ({t} is the table suffix): the records stored before the activity
-- tally existed, counted into it once. Setting (not adding) makes a second run harmless.
INSERT INTO activity_tally (activity_id, award_id, part, n)
  SELECT activity_id, 0, 'b{t}', COUNT(*) FROM user_take{t} WHERE state <> 'void' GROUP BY activity_id
  ON DUPLICATE KEY UPDATE n = VALUES(n);

INSERT INTO activity_tally (activity_id, award_id, part, n)
  SELECT activity_id, award_id, 'b{t}', COUNT(*) FROM win_order{t} WHERE award_id <> 0 GROUP BY activity_id, award_id
  ON DUPLICATE KEY UPDATE n = VALUES(n);
