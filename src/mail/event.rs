//! What an owner is told: one typed event per kind of change, stored in the outbox as JSON
//! (tagged by `event`) and rendered to a plain-text message when it is sent.

use serde::{Deserialize, Serialize};

use crate::trustpub::TrustpubData;

/// A change to a crate that its owners hear of. `by` is who did it: a user's login, or for a
/// Trusted Publishing publish the CI actor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum MailEvent {
    /// A trusted publisher config was added.
    PublisherAdded {
        by: String,
        /// The CI platform: `GitHub Actions`.
        provider: String,
        /// The config in one line: `octo-org/widget, workflow release.yml`.
        config: String,
        /// Added as a pending publisher, and turned into this crate's publisher by the first
        /// publish, which created the crate.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        pending: bool,
    },
    /// A trusted publisher config was removed, revoking the tokens minted through it.
    PublisherRemoved {
        by: String,
        provider: String,
        config: String,
        revoked_tokens: usize,
    },
    /// "Require Trusted Publishing" was turned on or off.
    TrustpubOnlyChanged {
        by: String,
        enabled: bool,
    },
    OwnerAdded {
        by: String,
        login: String,
    },
    OwnerRemoved {
        by: String,
        login: String,
    },
    /// A version was published through Trusted Publishing.
    TrustedPublish {
        by: String,
        version: String,
        provider: String,
        /// What published: `octo-org/widget (release.yml)`.
        source: String,
        run_url: Option<String>,
    },
    /// An owner revoked a token minted by the exchange.
    TokenRevoked {
        by: String,
        /// The CI actor the token was minted for.
        token_actor: String,
        workflow: String,
        run_url: Option<String>,
    },
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

impl MailEvent {
    /// A version published through Trusted Publishing by the CI identity `data`.
    pub fn trusted_publish(actor: &str, version: &str, data: &TrustpubData) -> MailEvent {
        MailEvent::TrustedPublish {
            by: actor.to_owned(),
            version: version.to_owned(),
            provider: data.kind().label().to_owned(),
            source: data.record().summary(),
            run_url: data.safe_run_url().map(str::to_owned),
        }
    }

    /// The name of the kind of event, as the audit log records a skipped mail.
    pub fn kind(&self) -> &'static str {
        match self {
            MailEvent::PublisherAdded { .. } => "publisher_added",
            MailEvent::PublisherRemoved { .. } => "publisher_removed",
            MailEvent::TrustpubOnlyChanged { .. } => "trustpub_only_changed",
            MailEvent::OwnerAdded { .. } => "owner_added",
            MailEvent::OwnerRemoved { .. } => "owner_removed",
            MailEvent::TrustedPublish { .. } => "trusted_publish",
            MailEvent::TokenRevoked { .. } => "token_revoked",
        }
    }

    /// The message for the crate `krate`, with a link to its settings under `base_url` (the
    /// public URL without a trailing `/`).
    pub fn render(&self, krate: &str, base_url: &str) -> Rendered {
        let (subject, mut lines): (String, Vec<String>) = match self {
            MailEvent::PublisherAdded {
                by,
                provider,
                config,
                pending,
            } => (
                format!("{krate}: trusted publisher added"),
                [
                    vec![
                        format!("{by} added a trusted publisher to the crate {krate}:"),
                        String::new(),
                        format!("  {provider}: {config}"),
                        String::new(),
                    ],
                    if *pending {
                        vec![
                            format!("{by} added it as a pending publisher before the crate existed; its first publish created the crate and made it the crate's publisher."),
                            String::new(),
                        ]
                    } else {
                        Vec::new()
                    },
                    vec!["Workflows that match it can now publish new versions of the crate without an API token.".to_owned()],
                ]
                .concat(),
            ),
            MailEvent::PublisherRemoved {
                by,
                provider,
                config,
                revoked_tokens,
            } => (
                format!("{krate}: trusted publisher removed"),
                vec![
                    format!("{by} removed a trusted publisher from the crate {krate}:"),
                    String::new(),
                    format!("  {provider}: {config}"),
                    String::new(),
                    format!("Tokens revoked with it: {revoked_tokens}."),
                ],
            ),
            MailEvent::TrustpubOnlyChanged { by, enabled: true } => (
                format!("{krate}: Trusted Publishing is now required"),
                vec![format!(
                    "{by} turned on \"require Trusted Publishing\" for the crate {krate}: new versions can only be published through a trusted publisher, no longer with an API token."
                )],
            ),
            MailEvent::TrustpubOnlyChanged { by, enabled: false } => (
                format!("{krate}: Trusted Publishing is no longer required"),
                vec![format!(
                    "{by} turned off \"require Trusted Publishing\" for the crate {krate}: owners' API tokens can publish new versions again."
                )],
            ),
            MailEvent::OwnerAdded { by, login } => (
                format!("{krate}: owner {login} added"),
                vec![format!("{by} made {login} an owner of the crate {krate}.")],
            ),
            MailEvent::OwnerRemoved { by, login } => (
                format!("{krate}: owner {login} removed"),
                vec![format!("{by} removed {login} from the owners of the crate {krate}.")],
            ),
            MailEvent::TrustedPublish {
                by,
                version,
                provider,
                source,
                run_url,
            } => (
                format!("{krate} {version} published through Trusted Publishing"),
                vec![
                    format!("Version {version} of the crate {krate} was published through Trusted Publishing."),
                    String::new(),
                    format!("  Published by: {by}"),
                    format!("  Through:      {provider}, {source}"),
                    format!("  Run:          {}", run_url.as_deref().unwrap_or("(no link)")),
                ],
            ),
            MailEvent::TokenRevoked {
                by,
                token_actor,
                workflow,
                run_url,
            } => (
                format!("{krate}: a Trusted Publishing token was revoked"),
                vec![
                    format!("{by} revoked a Trusted Publishing token of the crate {krate}; it can no longer publish the crate."),
                    String::new(),
                    format!("  Minted for: {token_actor}"),
                    format!("  Workflow:   {workflow}"),
                    format!("  Run:        {}", run_url.as_deref().unwrap_or("(no link)")),
                ],
            ),
        };
        lines.extend([
            String::new(),
            format!("The crate's settings, trusted publishers and audit log: {base_url}/crates/{krate}/settings"),
            String::new(),
            "-- ".to_owned(),
            format!("You receive this because you own the crate {krate} on {base_url}."),
            "If you did not expect this change, check the crate's settings now.".to_owned(),
        ]);
        let mut body = lines.join("\n");
        body.push('\n');
        Rendered { subject, body }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "https://crates.example.com";

    fn events() -> Vec<MailEvent> {
        vec![
            MailEvent::PublisherAdded {
                by: "alice".into(),
                provider: "GitHub Actions".into(),
                config: "octo-org/widget, workflow release.yml".into(),
                pending: false,
            },
            MailEvent::PublisherRemoved {
                by: "alice".into(),
                provider: "GitLab CI/CD".into(),
                config: "group/widget, .gitlab-ci.yml".into(),
                revoked_tokens: 2,
            },
            MailEvent::TrustpubOnlyChanged {
                by: "alice".into(),
                enabled: true,
            },
            MailEvent::TrustpubOnlyChanged {
                by: "alice".into(),
                enabled: false,
            },
            MailEvent::OwnerAdded {
                by: "alice".into(),
                login: "bob".into(),
            },
            MailEvent::OwnerRemoved {
                by: "alice".into(),
                login: "bob".into(),
            },
            MailEvent::TrustedPublish {
                by: "octocat".into(),
                version: "1.2.0".into(),
                provider: "GitHub Actions".into(),
                source: "octo-org/widget (release.yml)".into(),
                run_url: Some("https://github.com/octo-org/widget/actions/runs/1".into()),
            },
            MailEvent::TokenRevoked {
                by: "alice".into(),
                token_actor: "octocat".into(),
                workflow: "octo-org/widget (release.yml)".into(),
                run_url: None,
            },
            MailEvent::PublisherAdded {
                by: "dana".into(),
                provider: "Buildkite".into(),
                config: "acme/widget".into(),
                pending: true,
            },
        ]
    }

    #[test]
    fn every_message_names_the_crate_the_actor_and_links_the_settings() {
        for event in events() {
            let Rendered { subject, body } = event.render("widget", BASE);
            assert!(subject.starts_with("widget"), "{subject}");
            assert!(!subject.contains('\n'));
            assert!(body.contains("the crate widget"), "{body}");
            let by = match &event {
                MailEvent::TrustedPublish { by, .. } => by,
                MailEvent::PublisherAdded { by, .. }
                | MailEvent::PublisherRemoved { by, .. }
                | MailEvent::TrustpubOnlyChanged { by, .. }
                | MailEvent::OwnerAdded { by, .. }
                | MailEvent::OwnerRemoved { by, .. }
                | MailEvent::TokenRevoked { by, .. } => by,
            };
            assert!(body.contains(by.as_str()), "{body}");
            assert!(
                body.contains("https://crates.example.com/crates/widget/settings"),
                "{body}"
            );
        }
    }

    #[test]
    fn the_details_of_each_change_are_in_the_body() {
        let body = |event: &MailEvent| event.render("widget", BASE).body;
        let all = events();
        assert!(body(&all[0]).contains("GitHub Actions: octo-org/widget, workflow release.yml"));
        assert!(body(&all[1]).contains("Tokens revoked with it: 2."));
        assert!(
            all[2]
                .render("widget", BASE)
                .subject
                .contains("now required")
        );
        assert!(
            all[3]
                .render("widget", BASE)
                .subject
                .contains("no longer required")
        );
        assert!(body(&all[4]).contains("alice made bob an owner"));
        assert!(body(&all[5]).contains("alice removed bob from the owners"));
        let publish = body(&all[6]);
        assert!(publish.contains("Published by: octocat"));
        assert!(publish.contains("https://github.com/octo-org/widget/actions/runs/1"));
        assert!(body(&all[7]).contains("Minted for: octocat"));
        assert!(!body(&all[0]).contains("pending publisher"));
        assert!(
            body(&all[8]).contains("dana added it as a pending publisher before the crate existed")
        );
    }

    #[test]
    fn events_read_back_as_stored() -> anyhow::Result<()> {
        for event in events() {
            let json = serde_json::to_string(&event)?;
            assert!(
                json.contains(&format!("\"event\":\"{}\"", event.kind())),
                "{json}"
            );
            assert_eq!(serde_json::from_str::<MailEvent>(&json)?, event);
        }
        Ok(())
    }
}
