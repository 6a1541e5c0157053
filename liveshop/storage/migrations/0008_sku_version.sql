-- Each SKU commit sets the next version and requires the previous one, so a SKU actor can
-- write its next batch while the previous transaction finishes (pipelined group commit)
-- without ever committing a batch whose predecessor failed.
ALTER TABLE skus ADD COLUMN version bigint NOT NULL DEFAULT 0;
