-- Optimistic concurrency for writes. `version` is what the strong ETag of
-- GET /api/products/{id} names (catalog.rs), and what PUT and DELETE compare with If-Match:
-- their UPDATE/DELETE carries `AND version = $n`, and the UPDATE sets `version = version + 1`
-- in the same statement, so checking the version and writing are one atomic step (of two
-- writers holding the same ETag, the second finds the version changed: 412).
ALTER TABLE products ADD COLUMN version bigint NOT NULL DEFAULT 1 CHECK (version >= 1);

-- The trigger makes every UPDATE bump the version, including one run by hand in psql that
-- does not say so: a row that changed under an unchanged version would serve new bytes
-- under an old strong ETag, and clients revalidating with it would keep the old bytes.
-- It sets what the API's own UPDATE sets (OLD + 1), so the two never add up.
CREATE FUNCTION products_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    RETURN NEW;
END
$$;

CREATE TRIGGER products_bump_version
    BEFORE UPDATE ON products
    FOR EACH ROW EXECUTE FUNCTION products_bump_version();
