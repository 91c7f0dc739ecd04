//! The `wharf` command line.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::db::Database;
use crate::models::user::{NewUser, valid_login};
use crate::models::{ApiToken, User, now};
use crate::services::tokens::{self as token_service, TokenRequest};
use crate::startup::Application;

#[derive(Parser, Debug)]
#[command(
    name = "wharf",
    version,
    about = "A self-hostable Cargo registry with Trusted Publishing"
)]
pub struct Cli {
    /// A TOML file with settings (the WHARF_* keys in lower case, without the prefix).
    /// Environment variables win over it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run migrations, then serve the web app, the API and the index (the default).
    Serve,
    /// Run pending migrations and exit.
    Migrate,
    /// Administration: users, API tokens, consistency checks.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Try Wharf locally: starts a fake identity provider (GitHub login and REST API, GitHub
    /// Actions, GitLab CI and Buildkite OIDC issuers) on 127.0.0.1 and the registry configured
    /// against it. Loopback only.
    Dev(DevArgs),
}

#[derive(Args, Debug)]
pub struct DevArgs {
    /// Port of the fake identity provider on 127.0.0.1 (default: any free port).
    #[arg(long, visible_alias = "github-port", default_value_t = 0)]
    pub idp_port: u16,
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Check that every version's .crate file is in storage with its checksum, and that every
    /// crate's index file agrees with the database. Prints one line per problem and exits
    /// non-zero if there is any.
    Check,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user (for bootstrapping, or where an operator manages owners).
    Add(UserAdd),
}

#[derive(Args, Debug)]
pub struct UserAdd {
    /// The user's login (as on GitHub).
    pub login: String,
    /// The user's numeric GitHub id, so a later GitHub login maps to this user.
    #[arg(long)]
    pub github_id: Option<i64>,
    #[arg(long)]
    pub email: Option<String>,
    /// Make the user an administrator.
    #[arg(long)]
    pub admin: bool,
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create an API token and print it, alone, on the last line of stdout.
    Create(TokenCreate),
    /// Revoke an API token by id.
    Revoke {
        /// The token's id (printed by `create`).
        id: i64,
    },
}

#[derive(Args, Debug)]
pub struct TokenCreate {
    /// The login of the token's owner.
    #[arg(long)]
    pub user: String,
    /// A name to recognise the token by.
    #[arg(long, default_value = "cli")]
    pub name: String,
    /// Endpoint scopes (publish-new, publish-update, yank, change-owners, trusted-publishing);
    /// repeat for several. Without --scope the token has all of them.
    #[arg(long = "scope", value_name = "SCOPE")]
    pub scopes: Vec<String>,
    /// Crate-name patterns the token is limited to (`foo`, `foo-*`); repeat for several.
    /// Without --crate the token acts on every crate its user may act on.
    #[arg(long = "crate", value_name = "PATTERN")]
    pub crates: Vec<String>,
    /// Lifetime such as 90d or 12h. Without --expires-in the token does not expire.
    #[arg(long, value_name = "DURATION")]
    pub expires_in: Option<String>,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::Dev(args)) = &cli.command {
        return crate::dev::run(crate::dev::DevOptions {
            config_file: cli.config.clone(),
            idp_port: args.idp_port,
        })
        .await;
    }
    let config = Config::load(cli.config.as_deref())?;
    crate::telemetry::init(&config.log);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Dev(_) => bail!("unreachable: `dev` is handled above"),
        Command::Migrate => {
            let db = Database::connect(&config.database)?;
            let applied = db.migrate()?;
            println!("{applied} migration(s) applied");
            Ok(())
        }
        Command::Admin(AdminCommand::User(UserCommand::Add(args))) => {
            let db = Database::connect(&config.database)?;
            db.migrate()?;
            let user = add_user(&db, &args)?;
            println!("created user {} (id {})", user.login, user.id);
            Ok(())
        }
        Command::Admin(AdminCommand::Token(TokenCommand::Create(args))) => {
            let db = Database::connect(&config.database)?;
            db.migrate()?;
            let (id, token) = create_token(&db, &args)?;
            println!("created token {id} for {}", args.user);
            println!("{token}");
            Ok(())
        }
        Command::Admin(AdminCommand::Check) => {
            let db = Database::connect(&config.database)?;
            db.migrate()?;
            let storage = crate::storage::open(&config.storage)?;
            println!(
                "checking the crate storage ({}) against the database",
                config.storage
            );
            let summary = crate::check::run(&db, storage.as_ref(), |problem| {
                println!("{problem}");
            })
            .await?;
            println!("{summary}");
            if summary.problems > 0 {
                bail!(
                    "{} problem(s) found; each is listed above with what to do",
                    summary.problems
                );
            }
            Ok(())
        }
        Command::Admin(AdminCommand::Token(TokenCommand::Revoke { id })) => {
            let db = Database::connect(&config.database)?;
            db.migrate()?;
            if db.blocking(|conn| Ok(ApiToken::revoke(conn, id, now())?))? {
                println!("revoked token {id}");
                Ok(())
            } else {
                bail!("no live token with id {id}")
            }
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    tracing::info!(?config, "starting");
    let application = Application::build(config)?;
    tracing::info!(port = application.port(), "listening");
    if let Some(port) = application.metrics_port() {
        tracing::info!(port, "serving metrics at /metrics");
    }
    application
        .run_until_stopped()
        .await
        .context("the server failed")?;
    tracing::info!("stopped");
    Ok(())
}

pub fn add_user(db: &Database, args: &UserAdd) -> anyhow::Result<User> {
    if !valid_login(&args.login) {
        bail!(
            "`{}` is not a valid login (letters, digits and single hyphens, at most 39)",
            args.login
        );
    }
    if let Some(email) = &args.email
        && email.parse::<lettre::Address>().is_err()
    {
        bail!("`{email}` is not a valid email address (such as alice@example.com)");
    }
    db.blocking(|conn| {
        if User::by_login(conn, &args.login)?.is_some() {
            return Err(crate::errors::conflict(format!(
                "user `{}` exists already",
                args.login
            )));
        }
        let now = now();
        Ok(NewUser {
            login: &args.login,
            github_id: args.github_id,
            name: None,
            email: args.email.as_deref(),
            avatar_url: None,
            is_admin: args.admin,
            created_at: now,
            updated_at: now,
        }
        .insert(conn)?)
    })
}

pub fn create_token(db: &Database, args: &TokenCreate) -> anyhow::Result<(i64, String)> {
    let lifetime = match &args.expires_in {
        Some(d) => {
            let duration = humantime::parse_duration(d)
                .with_context(|| format!("`{d}` is not a duration such as 90d or 12h"))?;
            // Beyond chrono's range: the service refuses it as too far in the future.
            Some(chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX))
        }
        None => None,
    };
    let request = TokenRequest {
        name: args.name.clone(),
        scopes: (!args.scopes.is_empty()).then(|| args.scopes.clone()),
        crates: args.crates.clone(),
        lifetime,
    };
    let valid = token_service::validate(&request, now()).map_err(|errors| {
        let lines: Vec<String> = errors
            .iter()
            .map(|e| {
                let flag = match e.field {
                    token_service::NAME => "--name",
                    token_service::SCOPES => "--scope",
                    token_service::CRATES => "--crate",
                    _ => "--expires-in",
                };
                format!("{flag}: {}", e.message)
            })
            .collect();
        anyhow::anyhow!("{}", lines.join("\n"))
    })?;
    let created = db.blocking(|conn| {
        let user = User::by_login(conn, &args.user)?.ok_or_else(|| {
            crate::errors::not_found(format!(
                "no user `{}`; create it with `wharf admin user add`",
                args.user
            ))
        })?;
        Ok(token_service::create(conn, user.id, &valid, now())?)
    })?;
    Ok((created.id, created.token))
}
