//! Development mode.
