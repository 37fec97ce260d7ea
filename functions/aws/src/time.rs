//! SDK timestamps (`aws_smithy_types::DateTime`) to `chrono`.

use chrono::{DateTime, Utc};

/// The same instant as a `chrono` UTC time; `None` if chrono cannot represent it (outside its
/// range), which callers treat like a time the service did not report.
pub(crate) fn to_utc(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}
