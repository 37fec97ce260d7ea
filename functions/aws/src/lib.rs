//! AWS SDK adapters implementing the tenantflow ports (placeholder).
