-- Pruning deletes a consumer's oldest inbox rows: find them without reading the whole table.
CREATE INDEX inbox_consumer_handled_at ON inbox (consumer, handled_at);
