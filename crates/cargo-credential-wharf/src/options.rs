//! Arguments given to the provider in cargo's configuration
//! (`credential-provider = "cargo-credential-wharf --audience wharf.example.com"`).

use anyhow::{Context as _, bail};

/// The variable GitLab's `id_tokens:` keyword is expected to define when none is configured.
pub const DEFAULT_GITLAB_TOKEN_ENV: &str = "WHARF_ID_TOKEN";

/// The provider's arguments, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `--audience AUD`: the `aud` claim to request; overrides `WHARF_AUDIENCE`.
    pub audience: Option<String>,
    /// `--gitlab-token-env NAME`: where GitLab CI puts the ID token.
    pub gitlab_token_env: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            audience: None,
            gitlab_token_env: DEFAULT_GITLAB_TOKEN_ENV.to_owned(),
        }
    }
}

impl Options {
    /// Parses `--name value` and `--name=value` forms; anything else is an error that names the
    /// argument, so a typo in the configuration is not silently ignored.
    pub fn parse(args: &[&str]) -> anyhow::Result<Self> {
        let mut options = Self::default();
        let mut args = args.iter().copied();
        while let Some(arg) = args.next() {
            let (name, inline_value) = match arg.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (arg, None),
            };
            let mut value = || -> anyhow::Result<String> {
                let value = match inline_value {
                    Some(value) => value,
                    None => args
                        .next()
                        .with_context(|| format!("the provider argument `{name}` needs a value"))?,
                };
                if value.is_empty() {
                    bail!("the provider argument `{name}` needs a non-empty value");
                }
                Ok(value.to_owned())
            };
            match name {
                "--audience" => options.audience = Some(value()?),
                "--gitlab-token-env" => options.gitlab_token_env = value()?,
                _ => bail!(
                    "unknown provider argument `{arg}` (cargo-credential-wharf accepts \
                     `--audience AUD` and `--gitlab-token-env NAME`)"
                ),
            }
        }
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_arguments_give_the_defaults() -> anyhow::Result<()> {
        assert_eq!(Options::parse(&[])?, Options::default());
        assert_eq!(Options::default().gitlab_token_env, "WHARF_ID_TOKEN");
        Ok(())
    }

    #[test]
    fn separate_and_inline_values_are_both_accepted() -> anyhow::Result<()> {
        let options = Options::parse(&[
            "--audience",
            "wharf.example.com",
            "--gitlab-token-env=MY_TOKEN",
        ])?;
        assert_eq!(options.audience.as_deref(), Some("wharf.example.com"));
        assert_eq!(options.gitlab_token_env, "MY_TOKEN");
        Ok(())
    }

    #[test]
    fn an_unknown_argument_is_refused_with_its_name() {
        let Err(error) = Options::parse(&["--audiense", "x"]) else {
            panic!("a misspelt argument was accepted");
        };
        assert!(error.to_string().contains("`--audiense`"), "{error}");
    }

    #[test]
    fn a_missing_value_is_refused() {
        assert!(Options::parse(&["--audience"]).is_err());
        assert!(Options::parse(&["--gitlab-token-env="]).is_err());
    }
}
