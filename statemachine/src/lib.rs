//! Local Amazon States Language engine (placeholder).
