-- the shop's own tables; tailrace creates its own (tailrace_*) on first use
CREATE TABLE IF NOT EXISTS stock (
    product text PRIMARY KEY,
    units_left integer NOT NULL CHECK (units_left >= 0)
);
CREATE TABLE IF NOT EXISTS orders (
    id bigserial PRIMARY KEY,
    email text NOT NULL,
    product text NOT NULL REFERENCES stock,
    quantity integer NOT NULL CHECK (quantity > 0),
    placed_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS receipts (
    order_id bigint PRIMARY KEY REFERENCES orders,
    sent_to text NOT NULL,
    sent_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO stock VALUES ('kettle', 3), ('teapot', 10) ON CONFLICT DO NOTHING;
