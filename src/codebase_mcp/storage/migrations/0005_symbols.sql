-- Symbol lookup: the last segment of a chunk's symbol ("InvoiceCalculator.compute_total" ->
-- "compute_total", "linalg::Matrix" -> "matrix"), lower-cased, indexed for find_symbol.
CREATE FUNCTION symbol_tail(symbol text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    RETURN lower(regexp_replace(symbol, '^.*[.:#\\/> ]', ''));
CREATE INDEX chunks_symbol_tail ON chunks (symbol_tail(symbol)) WHERE symbol IS NOT NULL;
