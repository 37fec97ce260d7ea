//! Embedded local backend (placeholder).
