-- Once per sharded table ({t} is the table suffix): orders can wait for a shipping address
-- ('awaiting_address' needs 16 characters), and operators list orders by state.
-- Both statements can run again, or in two instances at once, without harm.
ALTER TABLE win_order{t} MODIFY grant_state VARCHAR(16) NOT NULL;

CREATE INDEX IF NOT EXISTS idx_win_order_state{t} ON win_order{t} (grant_state, order_id);
