-- The tenant schema of a small SaaS shop: customers, products, orders and their lines.
CREATE TABLE customers (
    id          INTEGER PRIMARY KEY,
    email       TEXT    NOT NULL,
    full_name   TEXT    NOT NULL,
    country     TEXT    NOT NULL,
    created_at  TEXT    NOT NULL
);
CREATE INDEX customers_email ON customers (email);

CREATE TABLE products (
    id          INTEGER PRIMARY KEY,
    sku         TEXT    NOT NULL UNIQUE,
    name        TEXT    NOT NULL,
    price_cents INTEGER NOT NULL CHECK (price_cents >= 0)
);

CREATE TABLE orders (
    id           INTEGER PRIMARY KEY,
    customer_id  INTEGER NOT NULL REFERENCES customers (id),
    ordered_at   TEXT    NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('paid', 'shipped', 'refunded')),
    total_cents  INTEGER NOT NULL CHECK (total_cents >= 0)
);
CREATE INDEX orders_customer ON orders (customer_id);

CREATE TABLE order_lines (
    order_id     INTEGER NOT NULL REFERENCES orders (id),
    line_no      INTEGER NOT NULL,
    product_id   INTEGER NOT NULL REFERENCES products (id),
    quantity     INTEGER NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, line_no)
);
