//! Services: one module per rule, called by both the JSON API and the pages, with typed errors.

pub mod publishers;
