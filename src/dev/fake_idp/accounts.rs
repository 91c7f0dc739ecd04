//! GitHub accounts: who the REST API knows (`GET /users/{login}`), who can sign in, and the
//! numeric IDs that GitHub Actions' claims carry.

use std::collections::HashMap;
use std::sync::Mutex;

use super::claims::stable_id;
use super::keys::lock;

/// Which GitHub accounts exist on the fake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountPolicy {
    /// Every valid login exists, with an ID derived from the login unless
    /// [`FakeIdp::set_account`](super::FakeIdp::set_account) gave it another: any repository
    /// owner can be used in development mode.
    OnDemand,
    /// Only the accounts seeded at start (the default repository owner and actor), set with
    /// [`FakeIdp::set_account`](super::FakeIdp::set_account), or signed up by signing in through
    /// the authorize page exist; any other login is a 404, as on GitHub. The tests' default.
    Listed,
}

/// A GitHub user or organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub login: String,
    pub id: i64,
}

pub(crate) struct Accounts {
    policy: AccountPolicy,
    /// Lowercased login → account.
    known: Mutex<HashMap<String, Account>>,
}

impl Accounts {
    pub(crate) fn new(policy: AccountPolicy, seeds: &[(&str, i64)]) -> Accounts {
        let known = seeds
            .iter()
            .map(|(login, id)| {
                (
                    login.to_ascii_lowercase(),
                    Account {
                        login: (*login).to_owned(),
                        id: *id,
                    },
                )
            })
            .collect();
        Accounts {
            policy,
            known: Mutex::new(known),
        }
    }

    pub(crate) fn policy(&self) -> AccountPolicy {
        self.policy
    }

    /// The account `GET /users/{login}` answers with, if it exists.
    pub(crate) fn find(&self, login: &str) -> Option<Account> {
        if let Some(account) = lock(&self.known).get(&login.to_ascii_lowercase()) {
            return Some(account.clone());
        }
        (self.policy == AccountPolicy::OnDemand && crate::models::user::valid_login(login))
            .then(|| derived(login))
    }

    /// The account `login` signs in as, signed up on first use.
    pub(crate) fn sign_in(&self, login: &str) -> Account {
        lock(&self.known)
            .entry(login.to_ascii_lowercase())
            .or_insert_with(|| derived(login))
            .clone()
    }

    /// The ID that claims naming `login` carry: its account's, else the one it would get.
    pub(crate) fn id_in_claims(&self, login: &str) -> i64 {
        self.find(login).map_or_else(|| derived(login).id, |a| a.id)
    }

    pub(crate) fn set(&self, login: &str, id: i64) {
        lock(&self.known).insert(
            login.to_ascii_lowercase(),
            Account {
                login: login.to_owned(),
                id,
            },
        );
    }

    /// Forgets what [`Accounts::set`] or a sign-in recorded. Under
    /// [`AccountPolicy::OnDemand`] the login exists again at once, with its derived ID.
    pub(crate) fn remove(&self, login: &str) {
        lock(&self.known).remove(&login.to_ascii_lowercase());
    }
}

fn derived(login: &str) -> Account {
    Account {
        login: login.to_owned(),
        id: stable_id("github-account", login),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_accounts_are_the_only_ones_until_someone_signs_in() {
        let accounts = Accounts::new(AccountPolicy::Listed, &[("octo-org", 65)]);
        assert_eq!(accounts.find("Octo-Org").map(|a| a.id), Some(65));
        assert_eq!(accounts.find("ghost"), None);

        let ghost = accounts.sign_in("ghost");
        assert_eq!(accounts.find("ghost"), Some(ghost.clone()));
        assert_eq!(
            accounts.sign_in("GHOST"),
            ghost,
            "signing in again keeps the id"
        );

        accounts.remove("ghost");
        assert_eq!(accounts.find("ghost"), None);
    }

    #[test]
    fn on_demand_accounts_exist_for_every_valid_login_with_stable_ids() {
        let accounts = Accounts::new(AccountPolicy::OnDemand, &[("octo-org", 65)]);
        let anyone = accounts.find("anyone").map(|a| a.id);
        assert!(anyone.is_some());
        assert_eq!(accounts.find("Anyone").map(|a| a.id), anyone);
        assert_eq!(accounts.sign_in("anyone").id, anyone.unwrap_or_default());
        assert_eq!(accounts.find("-not-a-login"), None);
        assert_eq!(accounts.find("octo-org").map(|a| a.id), Some(65));

        accounts.set("octo-org", 4040);
        assert_eq!(accounts.id_in_claims("octo-org"), 4040);
    }
}
