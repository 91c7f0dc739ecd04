//! The registry of CI providers: one line per provider in [`registry!`]. Everything that
//! iterates over providers or picks one by name reaches them from here: the verifier's issuer
//! routing ([`ProviderKind::issuer_setting`]), the typed claims ([`Claims`]), the record
//! ([`TrustpubData`]), the config API (`/api/v1/trusted_publishing/{kind}_configs`), the
//! settings page's lists and forms, the history page and the configuration's issuer settings.
//!
//! Generic code names a provider by [`ProviderKind`] and reaches its [`Provider`]
//! implementation with [`with_provider!`]:
//!
//! ```text
//! let json = with_provider!(kind, P => P::config_json(&config, name));
//! ```

use serde::{Deserialize, Serialize};

use super::errors::VerifyError;
use super::provider::{FormField, IssuerSetting, Provider};
use super::record::Record;

/// Calls `$callback! { [args] Variant = "kind" => Type, … }` with every provider. **The
/// registry: adding a provider adds one line here.**
macro_rules! registry {
    ($($callback:ident)::+ [$($args:tt)*]) => {
        $($callback)::+! { [$($args)*]
            GitHub = "github" => $crate::trustpub::github::GitHub,
            GitLab = "gitlab" => $crate::trustpub::gitlab::GitLab,
            Buildkite = "buildkite" => $crate::trustpub::buildkite::Buildkite,
        }
    };
}
pub(crate) use registry;

/// `with_provider!(kind, P => expr)`: evaluates `expr` with the type `P` standing for the
/// provider `kind` (a [`ProviderKind`]).
macro_rules! with_provider {
    ($kind:expr, $p:ident => $body:expr) => {
        $crate::trustpub::providers::registry!(
            $crate::trustpub::providers::dispatch [$kind, $p, $body]
        )
    };
}
pub(crate) use with_provider;

/// The `match` behind [`with_provider!`].
macro_rules! dispatch {
    ([$kind:expr, $p:ident, $body:expr] $($variant:ident = $name:literal => $ty:ty,)*) => {
        match $kind {
            $($crate::trustpub::providers::ProviderKind::$variant => {
                type $p = $ty;
                $body
            })*
        }
    };
}
pub(crate) use dispatch;

/// `with_claims!(claims, P, c => expr)`: evaluates `expr` with the type `P` standing for the
/// provider of `claims` (a [`Claims`]) and `c` bound to its typed claims.
macro_rules! with_claims {
    ($claims:expr, $p:ident, $c:ident => $body:expr) => {
        $crate::trustpub::providers::registry!(
            $crate::trustpub::providers::dispatch_claims [$claims, $p, $c, $body]
        )
    };
}
pub(crate) use with_claims;

/// The `match` behind [`with_claims!`].
macro_rules! dispatch_claims {
    ([$claims:expr, $p:ident, $c:ident, $body:expr] $($variant:ident = $name:literal => $ty:ty,)*) => {
        match $claims {
            $($crate::trustpub::providers::Claims::$variant($c) => {
                type $p = $ty;
                $body
            })*
        }
    };
}
pub(crate) use dispatch_claims;

/// The types with one variant per provider.
macro_rules! define {
    ([] $($variant:ident = $name:literal => $ty:ty,)*) => {
        /// A CI provider, by name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ProviderKind {
            $($variant,)*
        }

        impl ProviderKind {
            /// Every provider, in the registry's order.
            pub const ALL: &'static [ProviderKind] = &[$(ProviderKind::$variant,)*];

            /// The stable lower-case name: `github`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ProviderKind::$variant => <$ty as Provider>::KIND,)*
                }
            }

            /// The provider named `kind` (`github`), if there is one.
            pub fn from_kind(kind: &str) -> Option<ProviderKind> {
                Self::ALL.iter().copied().find(|p| p.as_str() == kind)
            }

            /// The platform's name for people: `GitHub Actions`.
            pub fn label(self) -> &'static str {
                match self {
                    $(ProviderKind::$variant => <$ty as Provider>::LABEL,)*
                }
            }

            pub fn issuer_setting(self) -> IssuerSetting {
                match self {
                    $(ProviderKind::$variant => <$ty as Provider>::ISSUER,)*
                }
            }

            pub fn form_id(self) -> &'static str {
                match self {
                    $(ProviderKind::$variant => <$ty as Provider>::FORM_ID,)*
                }
            }

            pub fn fields(self) -> &'static [FormField] {
                match self {
                    $(ProviderKind::$variant => <$ty as Provider>::FIELDS,)*
                }
            }

            pub fn columns(self) -> &'static [&'static str] {
                match self {
                    $(ProviderKind::$variant => <$ty as Provider>::COLUMNS,)*
                }
            }
        }

        /// The provider-specific claims of a verified ID token.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Claims {
            $($variant(<$ty as Provider>::Claims),)*
        }

        impl Claims {
            /// Types the verified payload as `kind`'s claims and applies its own refusals.
            pub fn parse(
                kind: ProviderKind,
                payload: serde_json::Value,
            ) -> Result<Claims, VerifyError> {
                match kind {
                    $(ProviderKind::$variant => {
                        let claims: <$ty as Provider>::Claims = serde_json::from_value(payload)
                            .map_err(|e| claims_error(kind, &e))?;
                        <$ty as Provider>::check(&claims)?;
                        Ok(Claims::$variant(claims))
                    })*
                }
            }

            pub fn kind(&self) -> ProviderKind {
                match self {
                    $(Claims::$variant(_) => ProviderKind::$variant,)*
                }
            }

            /// `published_by`: who or what published.
            pub fn published_by(&self) -> String {
                match self {
                    $(Claims::$variant(c) => <$ty as Provider>::published_by(c),)*
                }
            }

            /// What the token's job is, for messages: "repository `o/r`".
            pub fn subject(&self) -> String {
                match self {
                    $(Claims::$variant(c) => <$ty as Provider>::subject(c),)*
                }
            }

            /// What an exchange with these claims records.
            pub fn data(&self) -> TrustpubData {
                match self {
                    $(Claims::$variant(c) => TrustpubData::$variant(<$ty as Provider>::data(c)),)*
                }
            }
        }

        /// What an exchange records, tagged by `provider` (see [`super::record`]).
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(tag = "provider")]
        pub enum TrustpubData {
            $(#[serde(rename = $name)] $variant(<$ty as Provider>::Data),)*
        }

        impl TrustpubData {
            pub fn kind(&self) -> ProviderKind {
                match self {
                    $(TrustpubData::$variant(_) => ProviderKind::$variant,)*
                }
            }

            /// How the record is shown.
            pub fn record(&self) -> &dyn Record {
                match self {
                    $(TrustpubData::$variant(data) => data,)*
                }
            }
        }
    };
}

registry!(define []);

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

fn claims_error(kind: ProviderKind, error: &serde_json::Error) -> VerifyError {
    // serde's message names the claim ("missing field `repository`"); it never contains the JWT.
    VerifyError::invalid(format!(
        "The {} ID token lacks a required claim or has one of an unexpected type: {error}.",
        kind.label()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_has_its_own_name_form_and_setting() {
        let mut names = Vec::new();
        for kind in ProviderKind::ALL {
            assert_eq!(ProviderKind::from_kind(kind.as_str()), Some(*kind));
            assert!(
                kind.issuer_setting().key.starts_with("trustpub_"),
                "{kind:?}"
            );
            assert!(!kind.fields().is_empty());
            assert!(!kind.columns().is_empty());
            names.push((kind.as_str(), kind.form_id(), kind.issuer_setting().key));
        }
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                assert!(a.0 != b.0 && a.1 != b.1 && a.2 != b.2, "{a:?} {b:?}");
            }
        }
        assert_eq!(ProviderKind::from_kind("jenkins"), None);
    }
}
