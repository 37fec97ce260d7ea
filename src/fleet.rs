//! The example fleet: tenant names and a deterministic, seeded data generator for the example
//! schema (`examples/releases/0001-initial`).
//!
//! The same `(seed, tenant index, rows)` always gives the same rows, so two fleets made with the
//! same arguments are identical and a test can predict which tenants hold duplicate emails.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rusqlite::{params, Connection};
use tenantflow_core::names::Namespace;

const CUSTOMERS: [&str; 8] = [
    "acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka",
];
const ENVS: [&str; 3] = ["prod", "dev", "qa"];
const FIRST: [&str; 12] = [
    "ada", "alan", "grace", "linus", "barbara", "ken", "margaret", "dennis", "frances", "edsger",
    "radia", "tim",
];
const LAST: [&str; 12] = [
    "lovelace", "turing", "hopper", "torvalds", "liskov", "thompson", "hamilton", "ritchie",
    "allen", "dijkstra", "perlman", "berners",
];
const COUNTRIES: [&str; 6] = ["DE", "FR", "NL", "US", "JP", "BR"];
const STATUSES: [&str; 3] = ["paid", "shipped", "refunded"];
/// Products per tenant (a catalogue, not scaled by `rows`).
pub const PRODUCTS: usize = 20;

/// The namespace of tenant `index`: `<customer>-<project>-<env>`, e.g. `acme-0001-prod`.
/// Names are unique for every index below 8 × 9999.
pub fn tenant_name(index: usize) -> Namespace {
    let customer = CUSTOMERS[index % CUSTOMERS.len()];
    let project = index / CUSTOMERS.len() + 1;
    let env = ENVS[(index / CUSTOMERS.len()) % ENVS.len()];
    let name = format!("{customer}-{project:04}-{env}");
    // Every part is a lowercase word or digits, so the name is always a valid namespace.
    Namespace::parse(&name).unwrap_or_else(|e| unreachable!("generated namespace {name}: {e}"))
}

/// Whether tenant `index` of a fleet seeded with `seed` holds a duplicate email (and so fails
/// release `0003-unique-email`): one tenant in four, which one depends on the seed. Of 8 tenants,
/// exactly 2 have duplicates, whatever the seed.
pub fn has_duplicate_emails(seed: u64, index: usize) -> bool {
    index % 4 == (seed % 4) as usize
}

/// What the generator writes into one tenant database.
#[derive(Debug, Clone, Copy)]
pub struct TenantData {
    pub seed: u64,
    pub index: usize,
    /// Customers, and orders (each order has one to three lines).
    pub rows: usize,
}

impl TenantData {
    pub fn duplicate_emails(&self) -> bool {
        has_duplicate_emails(self.seed, self.index) && self.rows >= 2
    }

    /// Inserts the tenant's rows into a database that is on the `0001-initial` schema, in one
    /// transaction.
    pub fn seed(&self, conn: &Connection) -> rusqlite::Result<()> {
        let mut rng = ChaCha8Rng::seed_from_u64(
            self.seed ^ (self.index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        conn.execute_batch("BEGIN")?;
        let result = self.insert(conn, &mut rng);
        match result {
            Ok(()) => conn.execute_batch("COMMIT"),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    fn insert(&self, conn: &Connection, rng: &mut ChaCha8Rng) -> rusqlite::Result<()> {
        let mut product = conn
            .prepare("INSERT INTO products (id, sku, name, price_cents) VALUES (?1, ?2, ?3, ?4)")?;
        let mut prices = Vec::with_capacity(PRODUCTS);
        for p in 1..=PRODUCTS {
            let price: i64 = rng.gen_range(199..=19_999);
            prices.push(price);
            product.execute(params![
                p as i64,
                format!("SKU-{p:04}"),
                format!("Product {p}"),
                price
            ])?;
        }
        let mut customer = conn.prepare(
            "INSERT INTO customers (id, email, full_name, country, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for c in 1..=self.rows {
            let first = FIRST[rng.gen_range(0..FIRST.len())];
            let last = LAST[rng.gen_range(0..LAST.len())];
            // The same person signed up twice: customer 2 reuses customer 1's email.
            let email_id = if self.duplicate_emails() && c == 2 {
                1
            } else {
                c
            };
            let email = format!("user{email_id}@example.com");
            let day = rng.gen_range(1..=28);
            let month = rng.gen_range(1..=12);
            customer.execute(params![
                c as i64,
                email,
                format!("{first} {last}"),
                COUNTRIES[rng.gen_range(0..COUNTRIES.len())],
                format!("2024-{month:02}-{day:02}T10:00:00Z"),
            ])?;
        }
        let mut order = conn.prepare(
            "INSERT INTO orders (id, customer_id, ordered_at, status, total_cents) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut line = conn.prepare(
            "INSERT INTO order_lines (order_id, line_no, product_id, quantity) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for o in 1..=self.rows {
            let customer_id = rng.gen_range(1..=self.rows) as i64;
            let lines = rng.gen_range(1..=3);
            let mut total = 0i64;
            let mut picked = Vec::with_capacity(lines);
            for _ in 0..lines {
                let p = rng.gen_range(0..PRODUCTS);
                let q: i64 = rng.gen_range(1..=4);
                total += prices[p] * q;
                picked.push((p + 1, q));
            }
            let day = rng.gen_range(1..=28);
            let month = rng.gen_range(1..=12);
            order.execute(params![
                o as i64,
                customer_id,
                format!("2025-{month:02}-{day:02}T12:00:00Z"),
                STATUSES[rng.gen_range(0..STATUSES.len())],
                total
            ])?;
            for (n, (p, q)) in picked.into_iter().enumerate() {
                line.execute(params![o as i64, n as i64 + 1, p as i64, q])?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_and_unique() {
        let names: std::collections::BTreeSet<String> =
            (0..500).map(|i| tenant_name(i).to_string()).collect();
        assert_eq!(names.len(), 500);
        assert_eq!(tenant_name(0).as_str(), "acme-0001-prod");
        assert_eq!(tenant_name(9).as_str(), "globex-0002-dev");
    }

    #[test]
    fn a_few_but_not_all_tenants_have_duplicates() {
        for seed in 0..16 {
            let dup = (0..8).filter(|&i| has_duplicate_emails(seed, i)).count();
            assert_eq!(dup, 2, "seed {seed}");
        }
    }

    fn schema() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(include_str!(
            "../examples/releases/0001-initial/V1__create_schema.sql"
        ))
        .unwrap();
        conn
    }

    fn dump(conn: &Connection) -> Vec<String> {
        let mut out = Vec::new();
        for table in ["customers", "products", "orders", "order_lines"] {
            let mut stmt = conn
                .prepare(&format!("SELECT * FROM {table} ORDER BY 1, 2"))
                .unwrap();
            let cols = stmt.column_count();
            let rows = stmt
                .query_map([], |r| {
                    let mut s = String::new();
                    for i in 0..cols {
                        let v: rusqlite::types::Value = r.get(i)?;
                        s.push_str(&format!("{v:?}|"));
                    }
                    Ok(s)
                })
                .unwrap();
            out.extend(rows.map(Result::unwrap));
        }
        out
    }

    #[test]
    fn generator_is_deterministic_and_seed_dependent() {
        let data = |seed| TenantData {
            seed,
            index: 3,
            rows: 50,
        };
        let (a, b, c) = (schema(), schema(), schema());
        data(7).seed(&a).unwrap();
        data(7).seed(&b).unwrap();
        data(8).seed(&c).unwrap();
        assert_eq!(dump(&a), dump(&b));
        assert_ne!(dump(&a), dump(&c));
        let customers: i64 = a
            .query_row("SELECT COUNT(*) FROM customers", [], |r| r.get(0))
            .unwrap();
        assert_eq!(customers, 50);
    }

    #[test]
    fn duplicate_tenants_break_the_unique_index_and_others_do_not() {
        for index in 0..8 {
            let data = TenantData {
                seed: 42,
                index,
                rows: 20,
            };
            let conn = schema();
            data.seed(&conn).unwrap();
            let unique = conn.execute_batch(include_str!(
                "../examples/releases/0003-unique-email/V3__unique_customer_email.sql"
            ));
            assert_eq!(unique.is_err(), data.duplicate_emails(), "tenant {index}");
        }
    }
}
