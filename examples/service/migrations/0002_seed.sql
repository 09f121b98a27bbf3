-- 36 categories and 10,000 products, deterministic, with a share of NULLs in every nullable
-- column so responses look like a real catalog's.
INSERT INTO categories (id, name, description)
SELECT n,
       'Category ' || n,
       CASE WHEN n % 3 = 0 THEN NULL ELSE 'Everything in category ' || n END
FROM generate_series(1, 36) AS n;

INSERT INTO products (category_id, name, description, price_cents, discount_percent, image_url, stock, created_at, updated_at)
SELECT 1 + (n * 7) % 36,
       (ARRAY['Teapot', 'Kaffeemühle', 'Jalapeño sauce', 'Tote bag', 'Desk lamp', 'Notebook'])[1 + n % 6] || ' #' || n,
       CASE WHEN n % 5 = 0 THEN NULL ELSE 'A fine product, number ' || n || ', described at some length.' END,
       100 + (n * 37) % 20000,
       CASE WHEN n % 4 = 0 THEN (n % 50) ELSE NULL END,
       CASE WHEN n % 3 = 0 THEN NULL ELSE 'https://img.example.com/p/' || n || '.jpg' END,
       (n * 13) % 500,
       timestamptz '2026-01-01 00:00:00+00' + n * interval '1 minute',
       timestamptz '2026-01-01 00:00:00+00' + n * interval '1 minute'
FROM generate_series(1, 10000) AS n;
