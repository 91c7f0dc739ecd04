//! The rules that the JSON API, the pages and the command line share, one module per rule. A
//! service takes a database connection and typed input and answers typed errors (`thiserror`
//! enums); it knows nothing of HTTP. Its callers only translate: the API into its JSON error
//! shape (the statuses are in [`crate::errors`]), the pages into an error next to a form's field,
//! the command line into a message.

pub mod owners;
pub mod pending;
pub mod publishers;
pub mod tokens;

/// What is wrong with one field of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        FieldError {
            field,
            message: message.into(),
        }
    }
}
