-- One account per email address. Fails on a tenant whose data already holds the same email
-- twice: a data-dependent failure that only shows up on some tenants.
DROP INDEX customers_email;
CREATE UNIQUE INDEX customers_email_unique ON customers (email);
