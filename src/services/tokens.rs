//! Creating a user's API token: the rules for its name, endpoint scopes, crate patterns and
//! lifetime, and the insert. Called by the tokens settings page and `wharf admin token create`,
//! which only gather the input their own way and show the [`FieldError`]s next to their fields
//! or flags.

use chrono::NaiveDateTime;

use super::FieldError;
use crate::db::DbConn;
use crate::models::token::NewApiToken;
use crate::tokens::{self, CrateScope, EndpointScope};

/// The longest token name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// The most crate patterns one token may have.
pub const MAX_CRATE_PATTERNS: usize = 50;

/// The fields of a token request, as named in [`FieldError::field`].
pub const NAME: &str = "name";
pub const SCOPES: &str = "scopes";
pub const CRATES: &str = "crates";
pub const EXPIRY: &str = "expiry";

/// What a user asks for, as entered.
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    pub name: String,
    /// `None`: every endpoint scope. `Some`: these, at least one.
    pub scopes: Option<Vec<String>>,
    /// Crate-name patterns (`foo`, `foo-*`); none: every crate.
    pub crates: Vec<String>,
    /// How long the token lives; `None`: it does not expire.
    pub lifetime: Option<chrono::Duration>,
}

/// A request that passed every rule.
#[derive(Debug, Clone)]
pub struct ValidTokenRequest {
    name: String,
    scopes: Vec<EndpointScope>,
    crates: Vec<CrateScope>,
    expires_at: Option<NaiveDateTime>,
}

/// A token just created: its id, and the token itself (shown once, never stored).
pub struct CreatedToken {
    pub id: i64,
    pub token: String,
}

/// Checks `request` against the rules (as of `now`, for the expiry): every problem, one per
/// field at most.
pub fn validate(
    request: &TokenRequest,
    now: NaiveDateTime,
) -> Result<ValidTokenRequest, Vec<FieldError>> {
    let mut errors = Vec::new();
    let name = request.name.trim();
    if name.is_empty() {
        errors.push(FieldError::new(
            NAME,
            "give the token a name, so you can recognise it later",
        ));
    } else if name.chars().count() > MAX_NAME_CHARS {
        errors.push(FieldError::new(
            NAME,
            format!("the name can have at most {MAX_NAME_CHARS} characters"),
        ));
    }
    let scopes = match &request.scopes {
        None => Ok(Vec::new()),
        Some(given) if given.is_empty() => Err("choose at least one scope".to_owned()),
        Some(given) => given.iter().map(|s| s.parse::<EndpointScope>()).collect(),
    };
    let scopes = scopes.unwrap_or_else(|message| {
        errors.push(FieldError::new(SCOPES, message));
        Vec::new()
    });
    let crates = if request.crates.len() > MAX_CRATE_PATTERNS {
        Err(format!("at most {MAX_CRATE_PATTERNS} crate patterns"))
    } else {
        request
            .crates
            .iter()
            .map(|p| p.parse::<CrateScope>())
            .collect()
    };
    let crates = crates.unwrap_or_else(|message| {
        errors.push(FieldError::new(CRATES, message));
        Vec::new()
    });
    let expires_at = match request.lifetime {
        None => None,
        Some(lifetime) if lifetime <= chrono::Duration::zero() => {
            errors.push(FieldError::new(EXPIRY, "the expiry must be in the future"));
            None
        }
        Some(lifetime) => now.checked_add_signed(lifetime).or_else(|| {
            errors.push(FieldError::new(
                EXPIRY,
                "the expiry is too far in the future",
            ));
            None
        }),
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ValidTokenRequest {
        name: name.to_owned(),
        scopes,
        crates,
        expires_at,
    })
}

/// Creates the token for `user_id`.
pub fn create(
    conn: &mut DbConn,
    user_id: i64,
    request: &ValidTokenRequest,
    now: NaiveDateTime,
) -> diesel::QueryResult<CreatedToken> {
    let (token, hash) = tokens::generate(tokens::API_TOKEN_PREFIX);
    let scopes: Vec<_> = request.scopes.iter().map(|s| s.as_str()).collect();
    let crates: Vec<_> = request.crates.iter().map(CrateScope::as_str).collect();
    let row = NewApiToken {
        user_id,
        name: &request.name,
        token_hash: &hash,
        endpoint_scopes: tokens::join_scopes(&scopes),
        crate_scopes: tokens::join_scopes(&crates),
        created_at: now,
        expires_at: request.expires_at,
    }
    .insert(conn)?;
    Ok(CreatedToken { id: row.id, token })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> NaiveDateTime {
        chrono::DateTime::from_timestamp(1_800_000_000, 0)
            .map(|t| t.naive_utc())
            .unwrap_or_default()
    }

    fn request() -> TokenRequest {
        TokenRequest {
            name: "laptop".to_owned(),
            scopes: Some(vec!["publish-new".to_owned()]),
            crates: vec!["made-*".to_owned()],
            lifetime: Some(chrono::Duration::days(30)),
        }
    }

    /// The field of each error, for one broken request.
    fn fields(request: TokenRequest) -> Vec<&'static str> {
        match validate(&request, now()) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.into_iter().map(|e| e.field).collect(),
        }
    }

    #[test]
    fn each_rule_names_its_field() {
        let long_name = "é".repeat(MAX_NAME_CHARS + 1);
        let cases: Vec<(&str, TokenRequest, Vec<&str>)> = vec![
            ("valid", request(), vec![]),
            (
                "no scopes asked: all",
                TokenRequest {
                    scopes: None,
                    ..request()
                },
                vec![],
            ),
            (
                "no expiry",
                TokenRequest {
                    lifetime: None,
                    ..request()
                },
                vec![],
            ),
            (
                "blank name",
                TokenRequest {
                    name: "  ".into(),
                    ..request()
                },
                vec![NAME],
            ),
            (
                "long name",
                TokenRequest {
                    name: long_name,
                    ..request()
                },
                vec![NAME],
            ),
            (
                "name of 100 two-byte characters",
                TokenRequest {
                    name: "é".repeat(MAX_NAME_CHARS),
                    ..request()
                },
                vec![],
            ),
            (
                "empty scope list",
                TokenRequest {
                    scopes: Some(vec![]),
                    ..request()
                },
                vec![SCOPES],
            ),
            (
                "unknown scope",
                TokenRequest {
                    scopes: Some(vec!["publish".into()]),
                    ..request()
                },
                vec![SCOPES],
            ),
            (
                "bad pattern",
                TokenRequest {
                    crates: vec!["bad name!".into()],
                    ..request()
                },
                vec![CRATES],
            ),
            (
                "too many patterns",
                TokenRequest {
                    crates: vec!["a".into(); MAX_CRATE_PATTERNS + 1],
                    ..request()
                },
                vec![CRATES],
            ),
            (
                "expired at once",
                TokenRequest {
                    lifetime: Some(chrono::Duration::zero()),
                    ..request()
                },
                vec![EXPIRY],
            ),
            (
                "beyond the calendar",
                TokenRequest {
                    lifetime: Some(chrono::Duration::MAX),
                    ..request()
                },
                vec![EXPIRY],
            ),
            (
                "everything wrong",
                TokenRequest {
                    name: String::new(),
                    scopes: Some(vec![]),
                    crates: vec!["!".into()],
                    lifetime: Some(chrono::Duration::seconds(-1)),
                },
                vec![NAME, SCOPES, CRATES, EXPIRY],
            ),
        ];
        for (case, request, expected) in cases {
            assert_eq!(fields(request), expected, "{case}");
        }
    }

    #[test]
    fn a_valid_request_keeps_the_trimmed_name_and_the_expiry() {
        let valid = validate(
            &TokenRequest {
                name: "  laptop ".into(),
                ..request()
            },
            now(),
        )
        .map_err(|e| format!("{e:?}"));
        let valid = valid.as_ref().map(|v| (v.name.as_str(), v.expires_at));
        assert_eq!(
            valid,
            Ok(("laptop", Some(now() + chrono::Duration::days(30))))
        );
    }

    #[test]
    fn an_unknown_scope_is_named_with_the_known_ones() {
        let errors = validate(
            &TokenRequest {
                scopes: Some(vec!["publish".into()]),
                ..request()
            },
            now(),
        )
        .err()
        .unwrap_or_default();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0]
                .message
                .starts_with("unknown token scope `publish` (known scopes: publish-new"),
            "{errors:?}"
        );
    }
}
