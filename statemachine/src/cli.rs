//! `tenantflow sfn run`.
