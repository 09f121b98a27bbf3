-- The catalog: categories and products. Nullable columns (description, discount_percent,
-- image_url) are what the null-stripping layer removes from responses.
CREATE TABLE categories (
    id          integer PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    description text
);

CREATE TABLE products (
    id               bigserial PRIMARY KEY,
    category_id      integer NOT NULL REFERENCES categories (id),
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description      text,
    price_cents      bigint NOT NULL CHECK (price_cents >= 0),
    discount_percent integer CHECK (discount_percent BETWEEN 0 AND 100),
    image_url        text,
    stock            integer NOT NULL DEFAULT 0 CHECK (stock >= 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Listing by category pages through (category_id, id).
CREATE INDEX products_category_id_idx ON products (category_id, id);
