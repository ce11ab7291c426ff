//! Real hub launcher (todo).
