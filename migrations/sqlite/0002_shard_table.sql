-- Once per sharded table ({t} is the table suffix): operators list orders by state (the
-- column is TEXT already, so 'awaiting_address' fits).
CREATE INDEX IF NOT EXISTS idx_win_order_state{t} ON win_order{t} (grant_state, order_id);
